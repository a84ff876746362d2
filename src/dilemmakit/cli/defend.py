"""`dilemma defend data|train|eval`: build ERR data, train the gate and adapters, measure the defense."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from dilemmakit.cli.app import app, err, out
from dilemmakit.cli.options import config_options, given_options
from dilemmakit.err.config import PRESETS, AdapterConfig, DataConfig, EvalConfig, TrainConfig, apply_preset
from dilemmakit.errors import FailedCalls, UserError

if TYPE_CHECKING:
    from dilemmakit.err.results import DefendEval

defend_app = typer.Typer(help="ERR defense: harm-gated LoRA (build data, train, evaluate).", no_args_is_help=True)
app.add_typer(defend_app, name="defend")


@defend_app.command("data")
@config_options
def data(
    config: DataConfig,
    out_dir: Path = typer.Option(..., "--out", help="Directory for train.jsonl / val.jsonl / meta.json"),
) -> None:
    """Build balanced Engage/Explain conversations (plain, TRIAL single- and multi-turn, benign dilemmas)."""
    from dilemmakit.err.builder import build

    if config.plain + config.trial + config.multi == 0:
        raise UserError("--plain, --trial and --multi are all zero: nothing to build")
    meta = build(config, out_dir, console=err)
    err.print(f"wrote {meta['train']} train / {meta['val']} val examples to {out_dir} ({meta['by_kind']})")


@defend_app.command("train")
@config_options
def train(
    adapters: AdapterConfig,
    tcfg: TrainConfig,
    model: str = typer.Option(..., "--model", help="Model spec to defend (embedded, embedded-aligned, hf:<path>)"),
    data_dir: Path = typer.Option(..., "--data", help="Directory from `dilemma defend data`"),
    out_dir: Path = typer.Option(..., "--out", help="Where the defense (safetensors + defense.json) goes"),
    resume: bool = typer.Option(True, "--resume/--no-resume", help="Continue from the checkpoint in --out"),
    init: Path | None = typer.Option(None, "--init", help="Start from this trained defense (its layout and weights)"),
) -> None:
    """Two-stage ERR training: the gate (BCE + sparsity), then the adapters with the gate frozen.

    Data-parallel: `accelerate launch --num_processes 8 -m dilemmakit.cli.main defend train ...` on GPUs,
    `torchrun --standalone --nproc_per_node 4 -m dilemmakit.cli.main defend train ...` for CPU processes.
    `--preset paper|repo-llama|repo-mistral|embedded` fills the options you did not give (on the command line
    or in a config file) from the paper's, the authors' or the shipped defense's recipe.
    """
    from dilemmakit.err.recipe import train_err
    from dilemmakit.parallel import process_state

    if tcfg.preset is not None:
        preset = PRESETS[tcfg.preset]
        adapters, tcfg = apply_preset(adapters, tcfg, given_options())
        err.print(f"preset {tcfg.preset}: {preset.about}; from {preset.source}")
    config = adapters.defense_config()
    report = train_err(model, data_dir, out_dir, config, tcfg, console=err, resume=resume, init=init)
    state = process_state()
    if state is not None and not state.is_main_process:
        return
    err.print(f"saved the defense to {out_dir}: {json.dumps({k: v for k, v in report.items() if k != 'examples'})}")
    err.print(f"use it with --model '{model}' --defense {out_dir}  (or the spec option ?defense={out_dir})")


@defend_app.command("eval")
@config_options
def evaluate(
    cfg: EvalConfig,
    base: str = typer.Option(..., "--base", help="Model spec before the defense"),
    defended: str | None = typer.Option(None, "--defended", help="Model spec after (default: --base with --defense)"),
    defense: str | None = typer.Option(None, "--defense", help="Defense directory applied to --base"),
    run_dir: Path = typer.Option(..., "--run-dir", help="Where campaigns and defend_eval.json are stored (resumable)"),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON"),
) -> None:
    """TRIAL/direct/StrongREJECT ASR, XSTest over-refusal, benign-dilemma engagement, swap-consistency and
    follow-through before/after; benign KL, gate accuracy, latency."""
    from dilemmakit.err.evaluate import evaluate as run_eval
    from dilemmakit.models.spec import with_defense

    if defended is None and defense is None:
        raise UserError("give --defended SPEC or --defense DIR")
    defended_spec = defended or with_defense(base, defense)
    from dilemmakit.err.results import SideResult

    result = run_eval(base, defended_spec, run_dir, cfg, console=err)
    keys = SideResult.RATES
    if as_json:
        out.print_json(json.dumps(_public(result)))
        _fail_on_errors(result)
        return
    from rich.table import Table

    table = Table(title=f"{base} -> {defended_spec}: k/n = rate [95% CI]", caption=_ci_caption(result.ci, cfg.seed))
    table.add_column("metric")
    table.add_column("base", justify="right")
    table.add_column("defended", justify="right")
    for k in keys:
        label = f"{k} ({MEASURES[k]})" if k in MEASURES else k
        table.add_row(label, *(side.rate(k).cell() for side in result.sides.values()))
    out.print(table)
    out.print(_defense_table(result))
    _fail_on_errors(result)


# how the non-judge measures read a reply
MEASURES = {
    "engagement": "keyword measure",
    "trial_turn1_act": "keyword measure",
    "swap_consistency": "keyword measure",
    "reference_agreement": "keyword measure",
    "followthrough": "feature rules",
}


def _public(result: DefendEval) -> dict:
    """`defend eval --json`: each rate's value per side, the engagement's n and CI, the pair's measures, and
    every measure's n and CI under "ci"."""
    from dilemmakit.err.results import SideResult

    return {
        **{label: {k: side.rate(k).value for k in SideResult.RATES} for label, side in result.sides.items()},
        "engagement_ci": {
            label: {
                "engagement_n": side.engagement.n,
                "engagement_ci_low": side.engagement.ci_low,
                "engagement_ci_high": side.engagement.ci_high,
            }
            for label, side in result.sides.items()
        },
        "benign_kl": result.benign_kl.value,
        "gate_accuracy": None if result.gate_accuracy is None else result.gate_accuracy["all"].value,
        "latency_ratio": result.latency_ratio.value,
        "ci": _intervals(result),
    }


def _intervals(result: DefendEval) -> dict:
    """Every measure's n and 95% CI: {side: {rate: {count, n, ci_low, ci_high}}, benign_kl: {value, n, ci_low,
    ci_high}, ..., settings: how the CIs were drawn}."""
    from dataclasses import asdict

    from dilemmakit.err.results import SideResult

    gate = None
    if result.gate_accuracy is not None:
        gate = {part: asdict(rate) for part, rate in result.gate_accuracy.items()}
    return {
        **{label: {k: asdict(side.rate(k)) for k in SideResult.RATES} for label, side in result.sides.items()},
        "benign_kl": asdict(result.benign_kl),
        "gate_accuracy": gate,
        "latency_ratio": asdict(result.latency_ratio),
        "settings": {**result.ci, "eval_seed": result.config["seed"]},
    }


def _ci_caption(settings: dict, seed: int) -> str:
    return (
        f"{settings['level']:.0%} CI: {settings['method']}, {settings['resamples']} resamples, seed {settings['seed']}; "
        f"eval seed {seed}"
    )


def _defense_table(result: DefendEval):
    """Benign KL, gate accuracy (overall and per half) and latency ratio, each with n and its 95% CI."""
    from rich.table import Table

    table = Table(title="the defense on benign and harmful prompts")
    table.add_column("measure")
    table.add_column("value [95% CI], n", justify="right")
    table.add_row("benign KL(base || defended), mean over prompts", result.benign_kl.cell(5))
    if result.gate_accuracy is None:
        table.add_row("gate accuracy", "n/a (no gate)")
    else:
        table.add_row("gate accuracy", result.gate_accuracy["all"].cell())
        table.add_row("  on harmful prompts (flagged)", result.gate_accuracy["harmful"].cell())
        table.add_row("  on benign prompts (passed)", result.gate_accuracy["benign"].cell())
    table.add_row("latency ratio defended/base, median", result.latency_ratio.cell())
    return table


def _fail_on_errors(result: DefendEval) -> None:
    """Exit with EXIT_FAILED_CALLS when a conversation or prompt of either side ended in an error."""
    sides = list(result.sides.values())
    errors = sum(side.errors for side in sides)
    if errors:
        first = next(side.first_error for side in sides if side.errors)
        raise FailedCalls(errors, sum(side.items for side in sides), "conversations and prompts", first)
