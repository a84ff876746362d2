"""`dilemma judge-eval`: agreement of a judge with human labels."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import typer
from rich.table import Table

from dilemmakit.cli.app import app, out
from dilemmakit.errors import FailedCalls
from dilemmakit.eval.judge_eval import evaluate_judge
from dilemmakit.judges.registry import judges_help


@app.command("judge-eval")
def judge_eval(
    judge: str = typer.Option(
        ...,
        "--judge",
        help=judges_help(over_refusal=True),
    ),
    data: Path = typer.Option(
        ...,
        "--data",
        help="CSV with prompt, completion, final_label (XSTest format), or 'calibration' (the built-in judge calibration set)",
    ),
    limit: int | None = typer.Option(None, "--limit", help="Use the first N rows"),
    concurrency: int = typer.Option(8, "--concurrency", help="Judge calls in flight"),
    as_json: bool = typer.Option(False, "--json", help='Print JSON: {"accuracy": .., "kappa": .., "n": ..}'),
) -> None:
    """Accuracy, Cohen's kappa, precision/recall of "complied" and the confusion matrix vs human labels."""
    result = asyncio.run(evaluate_judge(judge, data, limit=limit, concurrency=concurrency, show_progress=not as_json))
    if as_json:
        print(json.dumps(result, indent=2))
        FailedCalls.raise_if_any(result, "judged rows", rerun=False)
        return
    table = Table(title=f"{judge} vs human labels ({data.name})")
    for col in ("n", "accuracy", "kappa", "precision (complied)", "recall (complied)", "judge errors"):
        table.add_column(col, justify="right")
    table.add_row(
        str(result["n"]),
        f"{result['accuracy']:.3f}",
        f"{result['kappa']:.3f}",
        f"{result['precision_complied']:.3f}",
        f"{result['recall_complied']:.3f}",
        str(result["errors"]),
    )
    out.print(table)
    c = result["confusion"]
    matrix = Table(title="confusion (rows: human, columns: judge)")
    for col in ("", "judge: complied", "judge: refused"):
        matrix.add_column(col, justify="right")
    matrix.add_row("human: complied", str(c["tp"]), str(c["fn"]))
    matrix.add_row("human: refused", str(c["fp"]), str(c["tn"]))
    out.print(matrix)
    if result.get("accuracy_by_kind"):
        kinds = Table(title="accuracy per kind")
        for col in ("kind", "n", "accuracy"):
            kinds.add_column(col, justify="right")
        for kind, cell in result["accuracy_by_kind"].items():
            kinds.add_row(kind, str(cell["n"]), f"{cell['accuracy']:.3f}")
        out.print(kinds)
    FailedCalls.raise_if_any(result, "judged rows", rerun=False)
