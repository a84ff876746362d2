"""`dilemma export` and `dilemma summary`: read a stored run."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from dilemmakit.cli.app import app, err, out
from dilemmakit.errors import UserError
from dilemmakit.eval.summary import summarise, summary_tables
from dilemmakit.store.db import open_store
from dilemmakit.store.export import write_csv, write_jsonl


@app.command()
def export(
    run_dir: Path = typer.Option(..., "--run-dir", help="Run directory (holds dilemma.sqlite)"),
    format: str = typer.Option("jsonl", "--format", help="jsonl | csv"),
    out_file: Path | None = typer.Option(None, "--out", help="File to write (default: stdout)"),
) -> None:
    """One record per conversation (behavior, method, target, success, rounds, messages, verdicts), then one per
    stored eval item (engagement, follow-through, over-refusal, utility) with its messages."""
    writers = {"jsonl": write_jsonl, "csv": write_csv}
    if format not in writers:
        raise UserError(f"unknown export format {format!r}: use jsonl or csv")
    store = open_store(run_dir, read_only=True)
    try:
        if out_file is None:
            n, items = writers[format](store, sys.stdout)
        else:
            try:
                with open(out_file, "w", encoding="utf-8", newline="") as fh:
                    n, items = writers[format](store, fh)
            except OSError as exc:
                raise UserError(f"cannot write {out_file}: {exc.strerror}") from None
    finally:
        store.close()
    err.print(f"exported {n} conversations and {items} eval items" + (f" to {out_file}" if out_file else ""))


@app.command()
def summary(
    run_dir: Path = typer.Option(..., "--run-dir", help="Run directory (holds dilemma.sqlite)"),
    judge: str | None = typer.Option(
        None, "--judge", help="Count each conversation as this judge saw it (a judge `dilemma rejudge` added)"
    ),
    as_json: bool = typer.Option(False, "--json", help='Print JSON: {"by_method": {...}, ...}'),
) -> None:
    """Attack success rate per method (and target, category), the CLAS score of clas-judged runs, and,
    when a run has two or more judges, ASR per judge and their agreement on the same replies."""
    store = open_store(run_dir, read_only=True)
    try:
        data = summarise(store, judge=judge)
    finally:
        store.close()
    if as_json:
        print(json.dumps(data.as_dict(), indent=2))
        return
    for table in summary_tables(data):
        out.print(table)
