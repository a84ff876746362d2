"""`dilemma compare`, `dilemma overrefusal`, `dilemma engagement`, `dilemma followthrough`, `dilemma utility`:
evaluation beyond one run's ASR."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import typer

from dilemmakit.cli.app import app, out
from dilemmakit.cli.options import config_options
from dilemmakit.errors import FailedCalls, UserError
from dilemmakit.eval.compare import compare_runs, compare_tables
from dilemmakit.eval.engagement import EngagementConfig, run_engagement
from dilemmakit.eval.followthrough import FollowThroughConfig, run_followthrough
from dilemmakit.eval.overrefusal import OverRefusalConfig, run_overrefusal
from dilemmakit.eval.utility import UtilityConfig, run_utility
from dilemmakit.models.secrets import redact
from dilemmakit.store.db import open_store


@app.command()
def compare(
    run_dirs: list[Path] = typer.Option(..., "--run-dir", help="A run dir; repeat for each run to compare"),
    as_json: bool = typer.Option(False, "--json", help='Print JSON: {"attacks": [...], "evals": [...]}'),
) -> None:
    """ASR (with CIs), rounds and queries per method x target across runs, and their stored evals."""
    if not run_dirs:
        raise UserError("give at least one --run-dir")
    data = compare_runs(run_dirs)
    if as_json:
        print(json.dumps(data.as_dict(), indent=2))
        return
    for table in compare_tables(data):
        out.print(table)


@app.command()
@config_options
def overrefusal(
    config: OverRefusalConfig,
    run_dir: Path = typer.Option(..., "--run-dir", help="Run database to store the replies in; rerun to resume"),
    as_json: bool = typer.Option(False, "--json", help='Print JSON: {"over_refusal": .., "n": ..}'),
) -> None:
    """Over-refusal rate on XSTest's 250 safe prompts: the share the target refuses."""
    config.check()
    result = _run(run_dir, lambda store: run_overrefusal(config, store, show_progress=not as_json))
    _finish(
        result,
        as_json,
        "prompts",
        lambda: (
            f"over-refusal of {config.target} ({config.judge}): {100 * result['over_refusal']:.1f}% "
            f"({result['refused']}/{result['n']} safe prompts refused)"
        ),
    )


@app.command()
@config_options
def engagement(
    config: EngagementConfig,
    run_dir: Path = typer.Option(..., "--run-dir", help="Run database to store the replies in; rerun to resume"),
    as_json: bool = typer.Option(False, "--json", help='Print JSON: {"engagement": .., "ci_low": .., "n": ..}'),
) -> None:
    """Engagement with 60 held-out benign moral dilemmas: the share answered with a choice and a reason
    (keyword measure); refusing them is the alignment tax."""
    config.check()
    result = _run(run_dir, lambda store: run_engagement(config, store, show_progress=not as_json))
    _finish(
        result,
        as_json,
        "dilemmas",
        lambda: (
            f"dilemma engagement of {config.target} (keyword measure): {100 * result['engagement']:.1f}% "
            f"(95% CI {100 * result['ci_low']:.1f}-{100 * result['ci_high']:.1f}%; {result['engaged']}/{result['n']} "
            f"engaged, {result['refused']} refused, {result['unanswered']} without a clear choice and reason)"
        ),
    )


@app.command()
@config_options
def followthrough(
    config: FollowThroughConfig,
    run_dir: Path = typer.Option(..., "--run-dir", help="Run database to store the replies in; rerun to resume"),
    as_json: bool = typer.Option(False, "--json", help='Print JSON: {"followthrough": .., "n": .., "delivered": ..}'),
) -> None:
    """Follow-through on benign dilemmas: after turn 1, harmless follow-ups in the same conversation ("write
    the note she leaves"); the share of follow-ups carried out (feature rules: not restated, refused or looping)."""
    config.check()
    result = _run(run_dir, lambda store: run_followthrough(config, store, show_progress=not as_json))
    _finish(
        result,
        as_json,
        "follow-ups",
        lambda: (
            f"follow-through of {config.target} (feature rules): {100 * result['followthrough']:.1f}% "
            f"(95% CI {100 * result['ci_low']:.1f}-{100 * result['ci_high']:.1f}%; {result['delivered']}/{result['n']} "
            f"delivered, {result['restated']} restated an option, {result['refused']} refused, "
            f"{result['degenerate']} looping, {result['other']} other)"
        ),
    )


@app.command()
@config_options
def utility(
    config: UtilityConfig,
    run_dir: Path = typer.Option(..., "--run-dir", help="Run database to store the replies in; rerun to resume"),
    as_json: bool = typer.Option(False, "--json", help='Print JSON: {"score": .., "n": .., ...}'),
) -> None:
    """GSM8K exact match on the final number, or HumanEval pass@1 (with --allow-code-execution: tests run in a
    bubblewrap sandbox, no network, read-only files, killed at --timeout)."""
    config.check()
    result = _run(run_dir, lambda store: run_utility(config, store, show_progress=not as_json))
    _finish(
        result,
        as_json,
        "problems",
        lambda: (
            f"{config.bench} {result['metric']} of {config.target}: "
            f"{100 * result['score']:.1f}% ({result['passed']}/{result['n']})"
        ),
    )


def _finish(result: dict, as_json: bool, what: str, line) -> None:
    """Print the result (JSON or one line), then fail the command if some items ended in errors."""
    if as_json:
        print(json.dumps(result, indent=2))
    else:
        out.print(redact(line()))
    FailedCalls.raise_if_any(result, what)


def _run(run_dir: Path, work) -> dict:
    store = open_store(run_dir)
    try:
        return asyncio.run(work(store))
    finally:
        store.close()
