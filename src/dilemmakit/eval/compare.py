"""One table across run dirs: every method x target of each run, plus its stored evaluations."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.table import Table

from dilemmakit.eval.summary import SummaryRow, clas_cell, pct, summarise
from dilemmakit.store.db import open_store


@dataclass(frozen=True)
class Comparison:
    attacks: list[tuple[str, SummaryRow]]  # (run dir, method x target row)
    evals: list[dict[str, Any]]  # finished evals: run_dir, kind, target and the eval's result

    def as_dict(self) -> dict[str, Any]:
        """The JSON `dilemma compare --json` prints."""
        return {
            "attacks": [{"run_dir": run_dir, **row.as_dict()} for run_dir, row in self.attacks],
            "evals": self.evals,
        }


def compare_runs(run_dirs: list[Path]) -> Comparison:
    attacks, evals = [], []
    for run_dir in run_dirs:
        store = open_store(run_dir, read_only=True)
        try:
            attacks += [(str(run_dir), row) for row in summarise(store).by_method_target]
            for e in store.evals():
                if e["result"] is not None:
                    evals.append({"run_dir": str(run_dir), "kind": e["kind"], "target": e["target"], **e["result"]})
        finally:
            store.close()
    return Comparison(attacks, evals)


def compare_tables(data: Comparison) -> list[Table]:
    attacks = Table(title="Attack success rate across runs (95% bootstrap CI)")
    with_clas = any(r.clas_n for _, r in data.attacks)  # CLAS score: mean best mapped score / 100
    with_helper = any(r.helper_failures for _, r in data.attacks)
    columns = ["run", "method", "target", "n", "ASR", "95% CI"]
    columns += ["CLAS score (95% CI)"] if with_clas else []
    columns += ["rounds to success", "queries", "errors"] + (["helper failures"] if with_helper else [])
    for col in columns:
        attacks.add_column(col, justify="left" if col in ("run", "method", "target") else "right")
    for run_dir, r in data.attacks:
        cells = [
            run_dir,
            r.method,
            r.target or "-",
            str(r.n),
            pct(r.asr),
            f"{100 * r.ci_low:.1f}-{100 * r.ci_high:.1f}%",
        ]
        cells += [clas_cell(r)] if with_clas else []
        cells += [
            "-" if r.mean_rounds_to_success is None else f"{r.mean_rounds_to_success:.2f}",
            str(r.queries),
            str(r.errors),
        ]
        cells += [str(r.helper_failures)] if with_helper else []
        attacks.add_row(*cells)
    tables = [attacks]
    if data.evals:
        evals = Table(title="Over-refusal, dilemma engagement (keyword measure) and utility")
        for col in ("run", "eval", "target", "value", "n"):
            evals.add_column(col, justify="left" if col in ("run", "eval", "target") else "right")
        for e in data.evals:
            value = next(e[k] for k in ("over_refusal", "engagement", "score") if k in e)
            name = e["kind"] if "metric" not in e else f"{e['kind']} ({e['metric']})"
            evals.add_row(e["run_dir"], name, e["target"], f"{100 * value:.1f}%", str(e["n"]))
        tables.append(evals)
    return tables
