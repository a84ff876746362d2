"""`dilemma probe`: where the model knows a request is harmful, and where it stops acting on it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from dilemma.cli.app import app, err, out
from dilemma.errors import UserError
from dilemma.probes import PARTS, ProbeConfig, headline, run_probe


def _int_list(text: str | None, what: str) -> list[int] | None:
    if not text:
        return None
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"{what} must be comma-separated integers, e.g. 5,11,22") from None


@app.command()
def probe(
    model: str = typer.Option(..., "--model", help="Local model spec: embedded | hf:<path>[?dtype=..&device=..]"),
    out_dir: Path = typer.Option(..., "--out", help="Output dir: activations/, probe.json, plots, summary.txt"),
    limit: Optional[int] = typer.Option(None, "--limit", help="Requests per set (a seeded sample; default: all)"),
    parts: str = typer.Option(",".join(PARTS), "--parts", help=f"Analyses to run: {','.join(PARTS)}"),
    harmful: str = typer.Option("builtin", "--harmful", help="D_harm: builtin (refusal_direction), jbb|harmbench|... or a .csv/.jsonl"),
    benign: str = typer.Option("builtin", "--benign", help="D_benign: builtin (Alpaca via refusal_direction) or a .csv/.jsonl"),
    run_dir: Optional[Path] = typer.Option(None, "--run-dir", help="Run dir of `dilemma attack` for multi-turn trajectories"),
    layers: Optional[str] = typer.Option(None, "--layers", help="Trajectory layers, e.g. 5,11,22 (default: paper's, rescaled)"),
    successful_only: bool = typer.Option(False, "--successful-only", help="Trajectories of jailbroken conversations only"),
    max_conversations: int = typer.Option(20, "--max-conversations", help="Trajectories: at most N conversations"),
    pooling: str = typer.Option("last", "--pooling", help="last (last prompt token, paper) | mean (over prompt tokens)"),
    batch_size: int = typer.Option(8, "--batch-size", help="Prompts per forward pass (and per shard)"),
    folds: int = typer.Option(5, "--folds", help="Cross-fitting folds of the held-out evaluation"),
    l2: float = typer.Option(1e-2, "--l2", help="L2 penalty of the logistic probe (standardised features)"),
    framework: str = typer.Option("utilitarian", "--framework", help="Dilemma framing of the TRIAL sets"),
    seed: int = typer.Option(0, "--seed", help="Seed: sampling of --limit, scenario frames, folds"),
    fresh: bool = typer.Option(False, "--fresh", help="Discard stored activations in --out and capture again"),
    no_plots: bool = typer.Option(False, "--no-plots", help="Skip the PNG plots"),
    as_json: bool = typer.Option(False, "--json", help="Print the headline numbers as JSON"),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar"),
) -> None:
    """Per-layer harm probes, dissociation gap, refusal direction, logit lens, transfer and trajectories.

    Rerun the same command to resume an interrupted capture. Several GPUs:
    `accelerate launch -m dilemma.cli.main probe --model hf:<path> --out DIR`.
    """
    config = ProbeConfig(
        model=model, out=out_dir, limit=limit, harmful=harmful, benign=benign, seed=seed, framework=framework,
        batch_size=batch_size, pooling=pooling, folds=folds, l2=l2,
        parts=tuple(p.strip() for p in parts.split(",") if p.strip()), run_dir=run_dir,
        trajectory_layers=_int_list(layers, "--layers"), max_conversations=max_conversations,
        successful_only=successful_only, fresh=fresh, plots=not no_plots,
    )
    result = run_probe(config, console=err, show_progress=not quiet and not as_json)
    if result is None:  # a non-main process under `accelerate launch`
        return
    if as_json:
        print(json.dumps(headline(result), indent=2))
        return
    out.print((out_dir / "summary.txt").read_text(), highlight=False, end="")
