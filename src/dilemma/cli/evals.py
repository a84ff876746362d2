"""`dilemma compare`, `dilemma overrefusal`, `dilemma utility`: evaluation beyond one run's ASR."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import List, Optional

import typer

from dilemma.cli.app import app, err, out
from dilemma.errors import UserError
from dilemma.eval.compare import compare_runs, compare_tables
from dilemma.eval.overrefusal import OverRefusalConfig, run_overrefusal
from dilemma.eval.utility import UtilityConfig, run_utility
from dilemma.store.db import open_store


@app.command()
def compare(
    run_dirs: List[Path] = typer.Option(..., "--run-dir", help="A run dir; repeat for each run to compare"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON: {\"attacks\": [...], \"evals\": [...]}"),
) -> None:
    """ASR (with CIs), rounds and queries per method x target across runs, and their stored evals."""
    if not run_dirs:
        raise UserError("give at least one --run-dir")
    data = compare_runs(run_dirs)
    if as_json:
        print(json.dumps(data, indent=2))
        return
    for table in compare_tables(data):
        out.print(table)


@app.command()
def overrefusal(
    target: str = typer.Option(..., "--target", help="Model spec"),
    run_dir: Path = typer.Option(..., "--run-dir", help="Run database to store the replies in; rerun to resume"),
    judge: str = typer.Option("refusal", "--judge", help="refusal | classifier | xstest:<model spec>"),
    max_tokens: int = typer.Option(64, "--max-tokens", help="Reply length: a refusal shows in the first words"),
    limit: Optional[int] = typer.Option(None, "--limit", help="Use the first N of the 250 safe prompts"),
    concurrency: int = typer.Option(32, "--concurrency", help="Prompts in flight (a local model batches them)"),
    as_json: bool = typer.Option(False, "--json", help='Print JSON: {"over_refusal": .., "n": ..}'),
) -> None:
    """Over-refusal rate on XSTest's 250 safe prompts: the share the target refuses."""
    config = OverRefusalConfig(target=target, judge=judge, max_tokens=max_tokens, limit=limit, concurrency=concurrency)
    config.validate()
    result = _run(run_dir, lambda store: run_overrefusal(config, store, show_progress=not as_json))
    if as_json:
        print(json.dumps(result, indent=2))
        return
    out.print(f"over-refusal of {target} ({judge}): {100 * result['over_refusal']:.1f}% "
              f"({result['refused']}/{result['n']} safe prompts refused)")
    if result["errors"]:
        err.print(f"{result['errors']} prompts ended in errors; rerun the same command to retry them")


@app.command()
def utility(
    target: str = typer.Option(..., "--target", help="Model spec"),
    run_dir: Path = typer.Option(..., "--run-dir", help="Run database to store the replies in; rerun to resume"),
    bench: str = typer.Option("gsm8k", "--bench", help="gsm8k | humaneval"),
    limit: Optional[int] = typer.Option(50, "--limit", help="First N problems"),
    max_tokens: Optional[int] = typer.Option(None, "--max-tokens", help="Reply length (default 256 gsm8k, 384 humaneval)"),
    concurrency: int = typer.Option(16, "--concurrency", help="Problems in flight"),
    timeout_s: float = typer.Option(10.0, "--timeout", help="HumanEval: seconds per test run"),
    as_json: bool = typer.Option(False, "--json", help='Print JSON: {"score": .., "n": .., ...}'),
) -> None:
    """GSM8K exact match on the final number, or HumanEval pass@1 (tests in a limited subprocess)."""
    config = UtilityConfig(target=target, bench=bench, limit=limit, max_tokens=max_tokens, concurrency=concurrency,
                           timeout_s=timeout_s)
    config.validate()
    result = _run(run_dir, lambda store: run_utility(config, store, show_progress=not as_json))
    if as_json:
        print(json.dumps(result, indent=2))
        return
    out.print(f"{bench} {result['metric']} of {target}: {100 * result['score']:.1f}% ({result['passed']}/{result['n']})")


def _run(run_dir: Path, work) -> dict:
    store = open_store(run_dir)
    try:
        return asyncio.run(work(store))
    finally:
        store.close()
