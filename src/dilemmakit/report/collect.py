"""Gather what a report shows from a run dir: the run DB, its summary, and optional artefacts
(probe results, defense evals, extra tables other commands stored). Everything optional is read
defensively: a missing or odd artefact is skipped, never fatal."""

from __future__ import annotations

import json
import sqlite3
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dilemmakit.errors import UserError
from dilemmakit.eval.summary import Summary, summarise
from dilemmakit.models.spec import spec_identity
from dilemmakit.report.redact import harmful_turns, quotes_any
from dilemmakit.store.db import DB_NAME, ConversationRow, ExtraTable, RunStore, open_store
from dilemmakit.verdict import Verdict

MAX_ARTEFACT_BYTES = 5_000_000
MAX_IMAGE_BYTES = 3_000_000
MAX_EXTRA_ROWS = 200


@dataclass
class TurnView:
    idx: int
    role: str
    stage: str
    content: str
    harmful: bool  # a judge said this reply fulfilled the behavior: redacted unless asked otherwise
    verdicts: list[Verdict] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    quotes_harmful: bool = False  # quotes a harmful reply at length: redacted as well


@dataclass
class ConversationView:
    row: ConversationRow
    turns: list[TurnView]
    source: str = "."  # the run DB it came from, relative to the report's run dir

    @property
    def harmful_texts(self) -> list[str]:
        return [t.content for t in self.turns if t.harmful]

    @property
    def outcome(self) -> str:
        if self.row.status == "done":
            return "success" if self.row.success else "fail"
        return "error" if self.row.status == "error" else "unfinished"


@dataclass
class Artefact:
    """A JSON result file found in the run dir, with the PNGs stored beside it."""

    kind: str  # "probe" | "defense" | "judge"
    path: Path
    data: Any
    images: list[Path] = field(default_factory=list)


@dataclass
class ReportData:
    run_dir: Path
    sources: list[str]  # run DBs read, relative to run_dir ("." is run_dir itself)
    runs: list[tuple[str, dict]]
    summaries: list[tuple[str, Summary]]  # one per run DB, with its label as in `sources`
    conversations: list[ConversationView]
    judge_agreement: list[dict]  # per run DB and pair of judges: n, agreement, kappa (CIs), confusion
    rounds_to_success: dict[str, Counter]
    artefacts: list[Artefact]
    extra_tables: list[ExtraTable]
    evals: list[dict] = field(default_factory=list)  # over-refusal / utility evals: {kind, target, result, items}
    finding: dict | None = None  # `dilemma demo`'s demo.json: the one-sentence finding and its table
    # per demo target: one benign follow-through conversation (its messages) and one TRIAL conversation
    examples: list[dict] = field(default_factory=list)


def find_run_dbs(run_dir: Path, max_depth: int = 3) -> list[Path]:
    """Directories holding a run DB: run_dir itself, then nested ones (e.g. `defend eval` keeps
    base/ and defended/ campaigns under its run dir)."""
    found = [run_dir] if (run_dir / DB_NAME).exists() else []
    for path in sorted(run_dir.rglob(DB_NAME)):
        if path.parent != run_dir and len(path.relative_to(run_dir).parts) <= max_depth + 1:
            found.append(path.parent)
    return found


def collect(run_dir: Path) -> ReportData:
    sources = find_run_dbs(run_dir)
    artefacts = find_artefacts(run_dir)
    if not sources and not artefacts:
        raise UserError(f"no run database or results in {run_dir}: run `dilemma attack --run-dir {run_dir} ...` first")
    parts = []
    for source in sources:
        label = "." if source == run_dir else str(source.relative_to(run_dir))
        store = open_store(source, read_only=True)
        try:
            parts.append((label, _collect_store(store, label)))
        finally:
            store.close()
    many = len(parts) > 1
    conversations = [c for _, p in parts for c in p["conversations"]]
    return ReportData(
        run_dir=run_dir,
        sources=[label for label, _ in parts],
        runs=[(f"{label}: {run_id}" if many else run_id, cfg) for label, p in parts for run_id, cfg in p["runs"]],
        summaries=[(label, p["summary"]) for label, p in parts],
        conversations=conversations,
        judge_agreement=[{"run": label, **a.as_dict()} for label, p in parts for a in p["summary"].agreement],
        rounds_to_success=_rounds_to_success(conversations, many),
        artefacts=artefacts,
        extra_tables=[t for _, p in parts for t in p["extra_tables"]],
        evals=[{"run": label, **e} if many else e for label, p in parts for e in p["evals"]],
        finding=(finding := _finding(run_dir)),
        examples=_examples(finding, conversations, [p["followthrough"] for _, p in parts]),
    )


def _examples(finding: dict | None, conversations: list[ConversationView], follows: list[dict]) -> list[dict]:
    """One follow-through and one TRIAL transcript per demo target (the report's Finding section shows them)."""
    targets = finding.get("targets") if finding else None
    if not isinstance(targets, dict):
        return []
    merged: dict[str, list[dict]] = {}
    for f in follows:
        merged.update(f)
    out = []
    for row in targets.values():
        spec = row.get("target") if isinstance(row, dict) else None
        if not isinstance(spec, str):
            continue
        try:
            stored_as = spec_identity(spec)  # runs and evals record a spec without its transport options
        except UserError:
            stored_as = spec
        trial = next((c for c in conversations if c.row.method == "trial" and c.row.target == stored_as), None)
        out.append({"target": spec, "followthrough": merged.get(stored_as, []), "trial": trial})
    return out


def _finding(run_dir: Path) -> dict | None:
    """The demo's finding, when the run dir holds a readable demo.json with its sentence."""
    from dilemmakit.demo import DEMO_NAME

    data = _load_json(run_dir / DEMO_NAME) if (run_dir / DEMO_NAME).is_file() else None
    return data if isinstance(data, dict) and isinstance(data.get("finding"), str) else None


def _collect_store(store: RunStore, label: str) -> dict:
    conversations = []
    for row in store.conversations():
        verdicts = store.verdicts(row.id)
        harmful = harmful_turns(verdicts, row.broken_turn)
        by_turn: dict[int, list[Verdict]] = defaultdict(list)
        for v in verdicts:
            if v.turn_idx is not None:
                by_turn[v.turn_idx].append(v)
        turns = [
            TurnView(
                t.idx,
                t.role,
                t.stage,
                t.content,
                t.idx in harmful and t.role == "assistant",
                by_turn.get(t.idx, []),
                t.meta,
            )
            for t in store.turns(row.id)
        ]
        harmful_texts = [t.content for t in turns if t.harmful]
        for t in turns:  # a later turn (or a judge's reason) that quotes a harmful reply is redacted too
            if not t.harmful and quotes_any(t.content, harmful_texts):
                t.quotes_harmful = True
        conversations.append(ConversationView(row, turns, label))
    return {
        "conversations": conversations,
        "summary": summarise(store),
        "runs": store.runs(),
        "extra_tables": store.extra_tables(MAX_EXTRA_ROWS),
        "evals": _evals(store),
        "followthrough": _followthrough_examples(store),
    }


def _followthrough_examples(store: RunStore) -> dict[str, list[dict]]:
    """Per target: the messages of its first complete follow-through conversation (turn 1 and every follow-up)."""
    out: dict[str, list[dict]] = {}
    try:
        evals = [e for e in store.evals() if e["kind"] == "followthrough"]
        for e in evals:
            items = store.eval_items(e["id"])
            for item in sorted(items.values(), key=lambda it: it.item_id):
                messages = item.meta.get("messages") if isinstance(item.meta, dict) else None
                if (
                    isinstance(messages, list)
                    and item.label != "error"
                    and len(messages) > len(out.get(e["target"], []))
                ):
                    out[e["target"]] = messages
    except (sqlite3.Error, ValueError):
        return {}
    return out


def _evals(store: RunStore) -> list[dict]:
    try:
        evals = store.evals()
        counts = store.eval_item_counts()
    except (sqlite3.Error, ValueError):
        return []
    return [{**e, "items": counts.get(e["id"], 0)} for e in evals]


def _rounds_to_success(conversations: list[ConversationView], by_source: bool = False) -> dict[str, Counter]:
    out: dict[str, Counter] = defaultdict(Counter)
    for c in conversations:
        if c.outcome == "success":
            out[f"{c.source}: {c.row.method}" if by_source else c.row.method][c.row.rounds] += 1
    return dict(sorted(out.items()))


def _load_json(path: Path) -> Any:
    try:
        if path.stat().st_size > MAX_ARTEFACT_BYTES:
            return None
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _artefact_kind(path: Path) -> str | None:
    name = path.name.lower()
    if name.startswith("probe") or "probe" in path.parent.name.lower():
        return "probe"
    if name.startswith(("judge_eval", "judge-eval")):
        return "judge"
    if any(word in name for word in ("defend", "defense", "err_eval", "err-eval")) or path.parent.name.lower() in (
        "defend",
        "defense",
        "err",
    ):
        return "defense"
    return None


def find_artefacts(run_dir: Path) -> list[Artefact]:
    found = []
    for path in sorted(run_dir.rglob("*.json")):
        kind = _artefact_kind(path)
        if kind is None:
            continue
        data = _load_json(path)
        if data is None:
            continue
        images = sorted(p for p in path.parent.glob("*.png") if p.stat().st_size <= MAX_IMAGE_BYTES)[:12]
        found.append(Artefact(kind, path, data, images))
    return found
