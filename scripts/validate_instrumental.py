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
from dilemmakit.eval.stats import agreement, wilson_interval
from dilemmakit.judges.base import Judge
from dilemmakit.judges.instrumental import CAUSES, cause_of, decide, features, read_labelled
from dilemmakit.judges.registry import build_judge
from dilemmakit.progress import progress_bar

XSTEST_HELDOUT = 0.2  # the classifier's split (classifier/RECIPE.md): no XSTest row here was tuned on
OUTCOMES = CAUSES
SHORT = dict(
    zip(
        CAUSES,
        ("success", "loop", "restated", "option", "option+reasons", "explain", "refusal", "nothing"),
        strict=True,
    )
)
Row = tuple[str, str, list[str]]  # behavior, reply, the target's earlier replies in the conversation


def outcome(behavior: str, reply: str, earlier: list[str]) -> str:
    """What the instrumental judge decided: its reason's cause (success, or the test the reply failed)."""
    _, reason = decide(features(behavior, reply, earlier))
    return cause_of(reason)


def judge_all(judge: Judge, rows: list[Row], show: bool) -> list[bool]:
    async def go() -> list[bool]:
        out = []
        with progress_bar(show=show) as progress:
            task = progress.add_task(f"judging with {judge.name}", total=len(rows))
            for i, (behavior, reply, earlier) in enumerate(rows):
                context = [{"role": "assistant", "content": e} for e in (*earlier, reply)]
                verdict = await judge.judge(Behavior(f"row-{i}", behavior), reply, context)  # type: ignore[arg-type]
                out.append(verdict.success)
                progress.advance(task)
        return out

    return asyncio.run(go())


def compare(judges: list[Judge], rows: list[Row], gold: list[bool], classes: list[str], show: bool) -> dict:
    result = {}
    for judge in judges:
        predicted = judge_all(judge, rows, show)
        scores = agreement(predicted, gold)
        per_class: dict[str, dict[str, int]] = {}
        for label, p in zip(classes, predicted, strict=True):
            cell = per_class.setdefault(label, {"n": 0, "judged_success": 0})
            cell["n"] += 1
            cell["judged_success"] += int(p)
        low, high = wilson_interval(scores.tp + scores.tn, scores.n)
        result[judge.name] = {
            "n": scores.n,
            "accuracy": round(scores.accuracy, 4),
            "accuracy_ci": [round(low, 4), round(high, 4)],
            "kappa": round(scores.kappa, 4),
            "precision": round(scores.precision, 4),
            "recall": round(scores.recall, 4),
            "confusion": {"tp": scores.tp, "fp": scores.fp, "fn": scores.fn, "tn": scores.tn},
            "per_class": per_class,
        }
    return result


def dilemma_rows(split: str, source: str | None = None) -> tuple[list[Row], list[bool], list[str]]:
    labelled = [r for r in read_labelled(None if split == "all" else split) if source in (None, r.source)]
    if not labelled:
        raise UserError(f"no labelled rows in split {split!r}" + (f" from source {source!r}" if source else ""))
    rows = [(r.behavior, r.reply, list(r.earlier)) for r in labelled]
    return rows, [r.instrumental for r in labelled], [r.label for r in labelled]


def xstest_rows(path: Path) -> tuple[list[Row], list[bool], list[str]]:
    from dilemmakit.judges.classifier.labelled import is_heldout, load_rows

    labelled = [r for r in load_rows(path) if is_heldout(r.prompt, XSTEST_HELDOUT)]
    classes = ["complied" if r.complied else "refused" for r in labelled]
    return [(r.prompt, r.completion, []) for r in labelled], [r.complied for r in labelled], classes


def print_tables(console: Console, title: str, result: dict, outcomes: dict[str, Counter] | None) -> None:
    table = Table(title=title)
    for col in ("judge", "n", "accuracy", "95% Wilson CI", "kappa", "precision", "recall"):
        table.add_column(col, justify="right")
    for name, r in result.items():
        table.add_row(
            name,
            str(r["n"]),
            f"{r['accuracy']:.3f}",
            f"[{r['accuracy_ci'][0]:.3f}, {r['accuracy_ci'][1]:.3f}]",
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
            matrix.add_column(SHORT[o], justify="right")
        for label, counts in outcomes.items():
            matrix.add_row(label, *(str(counts.get(o, 0)) for o in OUTCOMES))
        console.print(matrix)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", choices=("heldout", "dev", "all"), default="heldout")
    parser.add_argument("--source", help='Only rows from this source ("written", or a model\'s "model:<name>")')
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
        rows, gold, classes = dilemma_rows(args.split, args.source)
        outcomes: dict[str, Counter] = {}
        for (behavior, reply, earlier), label in zip(rows, classes, strict=True):
            outcomes.setdefault(label, Counter())[outcome(behavior, reply, earlier)] += 1
        report["dilemma"] = {
            "split": args.split,
            "source": args.source or "all",
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
