"""Attack success rates from a run database, per method, target and category."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from rich.table import Table

from dilemma.eval.stats import bootstrap_ci
from dilemma.store.db import ConversationRow, RunStore

CI_LEVEL, CI_RESAMPLES, CI_SEED = 0.95, 2000, 0


@dataclass
class Cell:
    n: int = 0  # finished conversations
    successes: int = 0
    rounds_to_success: int = 0
    queries: int = 0
    errors: int = 0
    unfinished: int = 0
    outcomes: list[int] = field(default_factory=list)  # 1/0 per finished conversation, for the CI

    def add(self, c: ConversationRow) -> None:
        if c.status == "done":
            self.n += 1
            self.outcomes.append(int(bool(c.success)))
            self.queries += c.queries
            if c.success:
                self.successes += 1
                self.rounds_to_success += c.rounds
        elif c.status == "error":
            self.errors += 1
        else:
            self.unfinished += 1

    @property
    def asr(self) -> float:
        return self.successes / self.n if self.n else 0.0

    def as_dict(self) -> dict:
        low, high = bootstrap_ci(self.outcomes, level=CI_LEVEL, resamples=CI_RESAMPLES, seed=CI_SEED)
        return {
            "n": self.n, "successes": self.successes, "asr": round(self.asr, 4),
            "asr_ci": [round(low, 4), round(high, 4)],
            "mean_rounds_to_success": round(self.rounds_to_success / self.successes, 3) if self.successes else None,
            "queries": self.queries, "errors": self.errors, "unfinished": self.unfinished,
        }


def summarise(store: RunStore) -> dict:
    by_method: dict[str, Cell] = defaultdict(Cell)
    by_method_target: dict[tuple[str, str], Cell] = defaultdict(Cell)
    by_method_category: dict[tuple[str, str], Cell] = defaultdict(Cell)
    by_cell: dict[tuple[str, str, str], Cell] = defaultdict(Cell)
    for c in store.conversations():
        by_method[c.method].add(c)
        by_method_target[(c.method, c.target)].add(c)
        by_method_category[(c.method, c.category or "-")].add(c)
        by_cell[(c.method, c.target, c.category or "-")].add(c)
    return {
        "ci": {"level": CI_LEVEL, "method": "percentile bootstrap", "resamples": CI_RESAMPLES, "seed": CI_SEED},
        "by_method": {m: cell.as_dict() for m, cell in sorted(by_method.items())},
        "by_method_target": [{"method": m, "target": t, **cell.as_dict()} for (m, t), cell in sorted(by_method_target.items())],
        "by_method_category": [{"method": m, "category": k, **cell.as_dict()} for (m, k), cell in sorted(by_method_category.items())],
        "by_method_target_category": [{"method": m, "target": t, "category": k, **cell.as_dict()}
                                      for (m, t, k), cell in sorted(by_cell.items())],
    }


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _ci(row: dict) -> str:
    low, high = row["asr_ci"]
    return f"{_pct(low)}-{_pct(high)}"


def _rounds(row: dict) -> str:
    return "-" if row["mean_rounds_to_success"] is None else f"{row['mean_rounds_to_success']:.2f}"


def summary_tables(summary: dict) -> list[Table]:
    main = Table(title="Attack success rate by method and target (95% bootstrap CI)")
    for col in ("method", "target", "n", "successes", "ASR", "95% CI", "rounds to success", "queries", "errors",
                "unfinished"):
        main.add_column(col, justify="right" if col not in ("method", "target") else "left")
    for row in summary["by_method_target"]:
        main.add_row(row["method"], row["target"], str(row["n"]), str(row["successes"]), _pct(row["asr"]), _ci(row),
                     _rounds(row), str(row["queries"]), str(row["errors"]), str(row["unfinished"]))
    by_cat = Table(title="Attack success rate by method, target and category")
    for col in ("method", "target", "category", "n", "successes", "ASR", "95% CI", "rounds to success", "queries"):
        by_cat.add_column(col, justify="right" if col not in ("method", "target", "category") else "left")
    for row in summary["by_method_target_category"]:
        by_cat.add_row(row["method"], row["target"], row["category"], str(row["n"]), str(row["successes"]),
                       _pct(row["asr"]), _ci(row), _rounds(row), str(row["queries"]))
    return [main, by_cat]
