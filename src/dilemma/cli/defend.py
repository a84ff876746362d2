"""`dilemma defend data|train|eval`: build ERR data, train the gate and adapters, measure the defense."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from dilemma.cli.app import app, err, out

defend_app = typer.Typer(help="ERR defense: harm-gated LoRA (build data, train, evaluate).", no_args_is_help=True)
app.add_typer(defend_app, name="defend")


@defend_app.command("data")
def data(
    out_dir: Path = typer.Option(..., "--out", help="Directory for train.jsonl / val.jsonl / meta.json"),
    harmful: str = typer.Option("advbench", "--harmful", help="Harmful behaviors: a built-in set or a file"),
    benign: str = typer.Option("", "--benign", help="Benign prompts file (default: the package's Alpaca subset)"),
    plain: int = typer.Option(60, "--plain", help="Plain requests per class"),
    trial: int = typer.Option(30, "--trial", help="Single-turn TRIAL dilemmas per class"),
    multi: int = typer.Option(10, "--multi", help="Multi-turn TRIAL conversations per class (all three follow-up cases)"),
    writer: str = typer.Option("template", "--writer", help="'template' (offline) or a model spec that writes targets"),
    model: str = typer.Option("embedded-aligned", "--model", help="Offline: the model whose own answers are the Engage targets"),
    max_tokens: int = typer.Option(96, "--max-tokens", help="Max tokens of a written target"),
    framework: str = typer.Option("utilitarian", "--framework"),
    seed: int = typer.Option(42, "--seed", help="Shuffle/split seed (official: 42, 90/10)"),
) -> None:
    """Build balanced Engage/Explain conversations (plain, TRIAL single- and multi-turn)."""
    from dilemma.defense.builder import DataConfig, build
    from dilemma.errors import UserError

    if min(plain, trial, multi) < 0 or plain + trial + multi == 0:
        raise UserError("--plain/--trial/--multi must be >= 0 and not all zero")
    meta = build(DataConfig(harmful=harmful, benign=benign, plain=plain, trial=trial, multi=multi, writer=writer,
                            model=model, max_tokens=max_tokens, framework=framework, seed=seed), out_dir, console=err)
    err.print(f"wrote {meta['train']} train / {meta['val']} val examples to {out_dir} ({meta['by_kind']})")


@defend_app.command("train")
def train(
    model: str = typer.Option(..., "--model", help="Model spec to defend (embedded, embedded-aligned, hf:<path>)"),
    data_dir: Path = typer.Option(..., "--data", help="Directory from `dilemma defend data`"),
    out_dir: Path = typer.Option(..., "--out", help="Where the defense (safetensors + defense.json) goes"),
    detection_layer: int = typer.Option(-1, "--detection-layer", help="hidden_states index the gate reads (-1: scaled from the paper's 12/32)"),
    start_layer: int = typer.Option(-1, "--start-layer", help="First layer with adapters (-1: scaled from 16/32)"),
    rank: int = typer.Option(4, "--rank"),
    alpha: float = typer.Option(8.0, "--alpha"),
    dropout: float = typer.Option(0.05, "--dropout"),
    eps: float = typer.Option(0.0, "--eps", help="Safety floor added to the gate at inference"),
    threshold: float = typer.Option(0.5, "--threshold", help="Gate below this counts as 0 at inference"),
    lr: float = typer.Option(1e-3, "--lr", help="Adapter learning rate"),
    gate_lr: float = typer.Option(1e-3, "--gate-lr"),
    epochs: int = typer.Option(1, "--epochs", help="Stage 2 epochs"),
    gate_epochs: int = typer.Option(40, "--gate-epochs", help="Stage 1 epochs (on cached hidden states)"),
    batch: int = typer.Option(4, "--batch"),
    grad_accum: int = typer.Option(1, "--grad-accum"),
    max_seq_len: int = typer.Option(512, "--max-seq-len"),
    lambda_reg: float = typer.Option(0.1, "--lambda", help="Weight of mean |g| on benign examples (stage 1)"),
    static_gate: bool = typer.Option(False, "--static-gate", help="Ablation: gate fixed at 1, no detection"),
    skip_ungated: bool = typer.Option(False, "--skip-ungated", help="Stage 2: drop examples the frozen gate scores below threshold (their update is ~0; saves compute)"),
    seed: int = typer.Option(42, "--seed"),
    resume: bool = typer.Option(True, "--resume/--no-resume", help="Continue from the checkpoint in --out"),
    stages: str = typer.Option("both", "--stages", help="both | gate | adapters (e.g. retrain only the gate of --init)"),
    init: Optional[Path] = typer.Option(None, "--init", help="Start from this trained defense (its layout and weights)"),
) -> None:
    """Two-stage ERR training: the gate (BCE + sparsity), then the adapters with the gate frozen.

    Data-parallel: `accelerate launch --num_processes 8 -m dilemma.cli.main defend train ...` on GPUs,
    `torchrun --standalone --nproc_per_node 4 -m dilemma.cli.main defend train ...` for CPU processes.
    """
    from dilemma.defense.config import DefenseConfig
    from dilemma.defense.recipe import train_err
    from dilemma.defense.train import TrainConfig
    from dilemma.errors import UserError
    from dilemma.parallel import process_state

    if epochs < 1 or gate_epochs < 1 or batch < 1 or grad_accum < 1 or max_seq_len < 32:
        raise UserError("--epochs, --gate-epochs, --batch, --grad-accum must be >= 1 and --max-seq-len >= 32")
    if lr <= 0 or gate_lr <= 0:
        raise UserError("learning rates must be > 0")
    config = DefenseConfig(detection_layer=detection_layer, start_layer=start_layer, rank=rank, alpha=alpha,
                           dropout=dropout, eps=eps, threshold=threshold, static_gate=static_gate)
    tcfg = TrainConfig(epochs=epochs, gate_epochs=gate_epochs, lr=lr, gate_lr=gate_lr, batch=batch,
                       grad_accum=grad_accum, max_seq_len=max_seq_len, lambda_reg=lambda_reg, seed=seed, skip_ungated=skip_ungated,
                       stages=stages)
    report = train_err(model, data_dir, out_dir, config, tcfg, console=err, resume=resume, init=init)
    state = process_state()
    if state is not None and not state.is_main_process:
        return
    err.print(f"saved the defense to {out_dir}: {json.dumps({k: v for k, v in report.items() if k != 'examples'})}")
    err.print(f"use it with --model '{model}' --defense {out_dir}  (or the spec option ?defense={out_dir})")


@defend_app.command("eval")
def evaluate(
    base: str = typer.Option(..., "--base", help="Model spec before the defense"),
    defended: Optional[str] = typer.Option(None, "--defended", help="Model spec after (default: --base with --defense)"),
    defense: Optional[str] = typer.Option(None, "--defense", help="Defense directory applied to --base"),
    run_dir: Path = typer.Option(..., "--run-dir", help="Where campaigns and defend_eval.json are stored (resumable)"),
    behaviors: str = typer.Option("jbb", "--behaviors", help="Held-out behaviors for TRIAL / direct ASR"),
    limit: int = typer.Option(20, "--limit", help="Behaviors for TRIAL and direct ASR"),
    strongreject_limit: int = typer.Option(20, "--strongreject-limit"),
    xstest_limit: int = typer.Option(50, "--xstest-limit", help="XSTest safe prompts for over-refusal"),
    benign_limit: int = typer.Option(20, "--benign-limit", help="Benign prompts for KL and gate accuracy"),
    max_rounds: int = typer.Option(4, "--max-rounds"),
    latency_tokens: int = typer.Option(32, "--latency-tokens", help="New tokens per latency measurement"),
    max_tokens: int = typer.Option(96, "--max-tokens"),
    judge: str = typer.Option("refusal", "--judge", help="Judge spec for ASR (refusal | jbb:<model> | ...)"),
    attacker: str = typer.Option("template", "--attacker", help="TRIAL attacker and helper: 'template' (offline) or a model spec"),
    seed: int = typer.Option(0, "--seed"),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON"),
) -> None:
    """TRIAL/direct/StrongREJECT ASR and XSTest over-refusal before/after; benign KL, gate accuracy, latency."""
    from dilemma.defense.evaluate import EvalConfig
    from dilemma.defense.evaluate import evaluate as run_eval
    from dilemma.defense.loading import with_defense
    from dilemma.errors import UserError

    if defended is None and defense is None:
        raise UserError("give --defended SPEC or --defense DIR")
    if min(limit, strongreject_limit, xstest_limit, benign_limit, max_rounds, max_tokens, latency_tokens) < 1:
        raise UserError("sizes, --max-rounds and --max-tokens must be >= 1")
    defended_spec = defended or with_defense(base, defense)
    cfg = EvalConfig(behaviors=behaviors, limit=limit, strongreject_limit=strongreject_limit, xstest_limit=xstest_limit,
                     benign_limit=benign_limit, max_rounds=max_rounds, latency_tokens=latency_tokens, max_tokens=max_tokens, judge=judge, attacker=attacker, seed=seed)
    result = run_eval(base, defended_spec, run_dir, cfg, console=err)
    keys = ("trial_asr", "direct_asr", "strongreject_asr", "over_refusal")
    public = {"base": {k: result["base"][k] for k in keys}, "defended": {k: result["defended"][k] for k in keys},
              "benign_kl": result["benign_kl"], "gate_accuracy": result["gate_accuracy"],
              "latency_ratio": result["latency_ratio"]}
    if as_json:
        out.print_json(json.dumps(public))
        return
    from rich.table import Table

    table = Table(title=f"{base} -> {defended_spec}")
    table.add_column("metric")
    table.add_column("base", justify="right")
    table.add_column("defended", justify="right")
    for k in keys:
        table.add_row(k, f"{public['base'][k]:.3f}", f"{public['defended'][k]:.3f}")
    out.print(table)
    gate = "n/a" if public["gate_accuracy"] is None else f"{public['gate_accuracy']:.3f}"
    out.print(f"benign KL {public['benign_kl']:.5f}   gate accuracy {gate}   latency ratio {public['latency_ratio']:.3f}")
