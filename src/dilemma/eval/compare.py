"""One table across run dirs: every method x target of each run, plus its stored evaluations."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from dilemma.eval.summary import summarise
from dilemma.store.db import open_store


def compare_runs(run_dirs: list[Path]) -> dict:
    attacks, evals = [], []
    for run_dir in run_dirs:
        store = open_store(run_dir, create=False)
        try:
            for row in summarise(store)["by_method_target"]:
                attacks.append({"run_dir": str(run_dir), **row})
            for e in store.evals():
                if e["result"] is not None:
                    evals.append({"run_dir": str(run_dir), "kind": e["kind"], "target": e["target"], **e["result"]})
        finally:
            store.close()
    return {"attacks": attacks, "evals": evals}


def compare_tables(data: dict) -> list[Table]:
    attacks = Table(title="Attack success rate across runs (95% bootstrap CI)")
    for col in ("run", "method", "target", "n", "ASR", "95% CI", "rounds to success", "queries", "errors"):
        attacks.add_column(col, justify="left" if col in ("run", "method", "target") else "right")
    for r in data["attacks"]:
        low, high = r["asr_ci"]
        attacks.add_row(r["run_dir"], r["method"], r["target"], str(r["n"]), f"{100 * r['asr']:.1f}%",
                        f"{100 * low:.1f}-{100 * high:.1f}%",
                        "-" if r["mean_rounds_to_success"] is None else f"{r['mean_rounds_to_success']:.2f}",
                        str(r["queries"]), str(r["errors"]))
    tables = [attacks]
    if data["evals"]:
        evals = Table(title="Over-refusal and utility")
        for col in ("run", "eval", "target", "value", "n"):
            evals.add_column(col, justify="left" if col in ("run", "eval", "target") else "right")
        for e in data["evals"]:
            value = e.get("over_refusal", e.get("score"))
            name = e["kind"] if "metric" not in e else f"{e['kind']} ({e['metric']})"
            evals.add_row(e["run_dir"], name, e["target"], f"{100 * value:.1f}%", str(e["n"]))
        tables.append(evals)
    return tables
