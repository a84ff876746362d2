"""How far a judge agrees with people: run it over human-labelled completions (XSTest format).

A judge's "success" is read as "complied". For compliance judges (`refusal`, `classifier`,
`xstest:`) that is what they decide; harm judges (jbb, harmbench, strongreject, clas) answer a
stricter question, so on XSTest they are expected to call many compliant replies "fail".
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from dilemma.behaviors import Behavior
from dilemma.eval.labelled import read_labelled
from dilemma.eval.stats import agreement
from dilemma.judges.base import ERROR
from dilemma.judges.registry import build_judge, parse_judge_spec
from dilemma.models.pool import ModelPool
from dilemma.models.spec import parse_spec


async def evaluate_judge(judge_spec: str, data: Path, *, limit: int | None = None, concurrency: int = 8,
                         show_progress: bool = True) -> dict:
    _, model_spec, _ = parse_judge_spec(judge_spec)
    if model_spec:
        parse_spec(model_spec)
    rows = read_labelled(data)[:limit]
    pool = ModelPool(concurrency=concurrency)
    try:
        judge = build_judge(judge_spec, pool.get(model_spec) if model_spec else None)
        await pool.check_all()
        sem = asyncio.Semaphore(concurrency)
        progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), console=Console(stderr=True), disable=not show_progress)

        async def one(i: int):
            async with sem:
                row = rows[i]
                verdict = await judge.judge(Behavior(row.id, row.prompt), row.completion, [])
                progress.advance(task)
                return verdict

        with progress:
            task = progress.add_task(f"judge-eval {judge.name}", total=len(rows))
            verdicts = await asyncio.gather(*(one(i) for i in range(len(rows))))
    finally:
        await pool.aclose()
    graded = [(v.success, r.complied) for v, r in zip(verdicts, rows) if v.label != ERROR]
    result = agreement([p for p, _ in graded], [h for _, h in graded]).as_dict()
    return {**result, "judge": judge_spec, "data": str(data), "errors": len(rows) - len(graded)}
