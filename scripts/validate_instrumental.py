"""Validate the `instrumental` judge on held-out labelled text, beside `refusal` and `classifier` (dev tool).

    .venv/bin/python scripts/validate_instrumental.py [--split heldout|dev|all] [--no-classifier]
        [--xstest ../shared/data/xstest/labeled_completions] [--json]

Dilemma rows: `judges/data/instrumental_labelled.jsonl` (success = label "instrumental"). Its thresholds
were set on the dev split; the held-out split (other behaviors) is what to report. With --xstest, the
XSTest labelled completions' held-out split (the `classifier` judge's split, by prompt) too: there the
requests are direct, so "complied" (1_full_compliance) is read as instrumental.
Prints accuracy, Cohen's kappa and the confusion per gold class for each judge; the numbers belong in
`judges/INSTRUMENTAL.md` and the judge's docstring.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections import Counter
from pathlib import Path

from rich.console import Console
from rich.table import Table

from dilemmakit.behaviors import Behavior
from dilemmakit.errors import UserError
from dilemmakit.eval.stats import agreement
from dilemmakit.judges.base import Judge
from dilemmakit.judges.instrumental import (
    EXPLAIN,
    NO_CONTENT,
    OPTION_ONLY,
    REFUSAL,
    decide,
    features,
    read_labelled,
)
from dilemmakit.judges.registry import build_judge
from dilemmakit.progress import progress_bar

XSTEST_HELDOUT = 0.2  # the classifier's split (classifier/RECIPE.md): no XSTest row here was tuned on
OUTCOMES = ("success", REFUSAL, EXPLAIN, OPTION_ONLY, NO_CONTENT)


def outcome(behavior: str, reply: str) -> str:
    """What the instrumental judge decided: success, or the test the reply failed."""
    success, reason = decide(features(behavior, reply))
    return "success" if success else next(o for o in OUTCOMES[1:] if reason.startswith(o))


def judge_all(judge: Judge, rows: list[tuple[str, str]], show: bool) -> list[bool]:
    async def go() -> list[bool]:
        out = []
        with progress_bar(show=show) as progress:
            task = progress.add_task(f"judging with {judge.name}", total=len(rows))
            for i, (behavior, reply) in enumerate(rows):
                verdict = await judge.judge(Behavior(f"row-{i}", behavior), reply, [])
                out.append(verdict.success)
                progress.advance(task)
        return out

    return asyncio.run(go())


def compare(judges: list[Judge], rows: list[tuple[str, str]], gold: list[bool], classes: list[str], show: bool) -> dict:
    result = {}
    for judge in judges:
        predicted = judge_all(judge, rows, show)
        scores = agreement(predicted, gold)
        per_class: dict[str, dict[str, int]] = {}
        for label, p in zip(classes, predicted, strict=True):
            cell = per_class.setdefault(label, {"n": 0, "judged_success": 0})
            cell["n"] += 1
            cell["judged_success"] += int(p)
        result[judge.name] = {
            "n": scores.n,
            "accuracy": round(scores.accuracy, 4),
            "kappa": round(scores.kappa, 4),
            "precision": round(scores.precision, 4),
            "recall": round(scores.recall, 4),
            "confusion": {"tp": scores.tp, "fp": scores.fp, "fn": scores.fn, "tn": scores.tn},
            "per_class": per_class,
        }
    return result


def dilemma_rows(split: str) -> tuple[list[tuple[str, str]], list[bool], list[str]]:
    labelled = read_labelled(None if split == "all" else split)
    return [(r.behavior, r.reply) for r in labelled], [r.instrumental for r in labelled], [r.label for r in labelled]


def xstest_rows(path: Path) -> tuple[list[tuple[str, str]], list[bool], list[str]]:
    from dilemmakit.judges.classifier.labelled import is_heldout, load_rows

    labelled = [r for r in load_rows(path) if is_heldout(r.prompt, XSTEST_HELDOUT)]
    classes = ["complied" if r.complied else "refused" for r in labelled]
    return [(r.prompt, r.completion) for r in labelled], [r.complied for r in labelled], classes


def print_tables(console: Console, title: str, result: dict, outcomes: dict[str, Counter] | None) -> None:
    table = Table(title=title)
    for col in ("judge", "n", "accuracy", "kappa", "precision", "recall"):
        table.add_column(col, justify="right")
    for name, r in result.items():
        table.add_row(
            name,
            str(r["n"]),
            f"{r['accuracy']:.3f}",
            f"{r['kappa']:.3f}",
            f"{r['precision']:.3f}",
            f"{r['recall']:.3f}",
        )
    console.print(table)
    classes = list(next(iter(result.values()))["per_class"])
    per_class = Table(title="judged success / n, per gold class")
    per_class.add_column("gold class")
    for name in result:
        per_class.add_column(name, justify="right")
    for label in classes:
        per_class.add_row(
            label, *(f"{r['per_class'][label]['judged_success']}/{r['per_class'][label]['n']}" for r in result.values())
        )
    console.print(per_class)
    if outcomes:
        matrix = Table(title="instrumental: gold class (rows) x the judge's outcome (columns)")
        matrix.add_column("gold class")
        for o in OUTCOMES:
            matrix.add_column(o, justify="right")
        for label, counts in outcomes.items():
            matrix.add_row(label, *(str(counts.get(o, 0)) for o in OUTCOMES))
        console.print(matrix)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", choices=("heldout", "dev", "all"), default="heldout")
    parser.add_argument("--xstest", type=Path, help="XSTest labelled completions (a CSV or a folder of CSVs)")
    parser.add_argument("--no-classifier", action="store_true", help="Leave out the classifier judge")
    parser.add_argument("--json", action="store_true", help="Print JSON only")
    args = parser.parse_args(argv)
    console = Console(stderr=args.json)
    show = not args.json
    try:
        names = ["instrumental", "refusal"] + ([] if args.no_classifier else ["classifier"])
        judges = [build_judge(name, None) for name in names]
        report: dict = {}
        rows, gold, classes = dilemma_rows(args.split)
        outcomes: dict[str, Counter] = {}
        for (behavior, reply), label in zip(rows, classes, strict=True):
            outcomes.setdefault(label, Counter())[outcome(behavior, reply)] += 1
        report["dilemma"] = {
            "split": args.split,
            "judges": compare(judges, rows, gold, classes, show),
            "instrumental_outcomes": {k: dict(v) for k, v in outcomes.items()},
        }
        if args.xstest:
            rows, gold, classes = xstest_rows(args.xstest)
            report["xstest"] = {"split": "heldout", "judges": compare(judges, rows, gold, classes, show)}
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print_tables(console, f"dilemma rows ({args.split})", report["dilemma"]["judges"], outcomes)
    if "xstest" in report:
        print_tables(console, "XSTest held-out (complied = instrumental)", report["xstest"]["judges"], None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
