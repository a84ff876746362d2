"""Export a run database: one record per conversation, then one per stored eval item (engagement,
follow-through, over-refusal, utility), each with its `messages` (JSONL or CSV). `record` tells them apart."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from typing import TextIO

from dilemmakit.store.db import RunStore


def conversation_records(store: RunStore) -> Iterator[dict]:
    for c in store.conversations():
        turns = store.turns(c.id)
        yield {
            "record": "conversation",
            "conversation_id": c.id,
            "run_id": c.run_id,
            "behavior_id": c.behavior_id,
            "behavior": c.behavior,
            "category": c.category,
            "method": c.method,
            "target": c.target,
            "status": c.status,
            "success": c.success,
            "rounds": c.rounds,
            "queries": c.queries,
            "broken_turn": c.broken_turn,
            "error": c.error,
            "final_verdict": c.final_verdict,
            "final_score": c.final_score,
            "messages": [
                {"idx": t.idx, "role": t.role, "stage": t.stage, "content": t.content, "meta": t.meta} for t in turns
            ],
            "verdicts": [
                {
                    "turn_idx": v.turn_idx,
                    "judge": v.judge,
                    "label": v.label,
                    "score": v.score,
                    "raw": v.raw,
                    "reason": v.reason,
                }
                for v in store.verdicts(c.id)
            ],
        }


def eval_item_records(store: RunStore) -> Iterator[dict]:
    """Every stored eval item, as asked: a multi-turn item (follow-through) carries its whole conversation
    in `meta["messages"]`, a single-turn one is its prompt and reply."""
    for e in store.evals():
        for item in sorted(store.eval_items(e["id"]).values(), key=lambda it: it.item_id):
            meta = dict(item.meta)
            messages = meta.pop("messages", None) or [
                {"role": "user", "content": item.prompt},
                {"role": "assistant", "content": item.output},
            ]
            yield {
                "record": "eval_item",
                "eval_id": e["id"],
                "kind": e["kind"],
                "target": e["target"],
                "item_id": item.item_id,
                "label": item.label,
                "score": item.score,
                "meta": meta,
                "messages": messages,
            }


def records(store: RunStore) -> Iterator[dict]:
    yield from conversation_records(store)
    yield from eval_item_records(store)


CSV_FIELDS = [
    "record",
    "conversation_id",
    "run_id",
    "behavior_id",
    "behavior",
    "category",
    "method",
    "target",
    "status",
    "success",
    "rounds",
    "queries",
    "broken_turn",
    "error",
    "final_verdict",
    "final_score",
    "messages",
    "verdicts",
    "eval_id",
    "kind",
    "item_id",
    "label",
    "score",
    "meta",
]


def write_jsonl(store: RunStore, out: TextIO) -> tuple[int, int]:
    """Writes every record; returns (conversations, eval items)."""
    counts = {"conversation": 0, "eval_item": 0}
    for record in records(store):
        out.write(json.dumps(record, ensure_ascii=False) + "\n")
        counts[record["record"]] += 1
    return counts["conversation"], counts["eval_item"]


def write_csv(store: RunStore, out: TextIO) -> tuple[int, int]:
    """One table for both kinds of record (the other kind's columns left empty); returns (conversations,
    eval items)."""
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS)
    writer.writeheader()
    counts = {"conversation": 0, "eval_item": 0}
    for record in records(store):
        for key in ("messages", "verdicts", "meta"):
            if key in record:
                record[key] = json.dumps(record[key], ensure_ascii=False)
        writer.writerow(record)
        counts[record["record"]] += 1
    return counts["conversation"], counts["eval_item"]
