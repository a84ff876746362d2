"""Run a list of single-turn items against a target, grade each reply, store it: resumable and batched.

Items already stored under the eval id are skipped, so rerunning the same command resumes. Items
are sent concurrently: a local model batches them (LocalHFModel), an HTTP one runs them in parallel.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from rich.console import Console

from dilemmakit.errors import ModelCallError
from dilemmakit.models.base import ChatModel, GenParams
from dilemmakit.models.secrets import redact_values
from dilemmakit.progress import progress_bar
from dilemmakit.store.db import EvalItem, RunStore


@dataclass(frozen=True)
class Item:
    id: str
    prompt: str  # the user message
    data: dict  # what the grader needs (gold answer, tests, ...)


# grade(item, reply_text) -> (label, score, meta)
Grader = Callable[[Item, str], Awaitable[tuple[str, float | None, dict]]]


def first_error(items) -> str | None:
    """The message of the first item (by id) that ended in an error: a failed call, or the judge's reason."""
    for item in sorted(items, key=lambda it: it.item_id):
        if item.label == "error":
            return str(item.meta.get("error") or item.meta.get("reason") or "error")
    return None


def eval_id(kind: str, config: dict) -> str:
    digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:12]
    return f"{kind.replace(':', '-')}-{digest}"


async def run_items(
    store: RunStore,
    eid: str,
    items: list[Item],
    model: ChatModel,
    params: GenParams,
    grade: Grader,
    *,
    concurrency: int = 16,
    console: Console | None = None,
    show_progress: bool = True,
    title: str = "",
) -> dict[str, EvalItem]:
    done = store.eval_items(eid)
    todo = [it for it in items if it.id not in done or done[it.id].label == "error"]
    sem = asyncio.Semaphore(concurrency)
    progress = progress_bar(console=console, show=show_progress)

    async def one(item: Item) -> None:
        async with sem:
            try:
                reply = await model.generate([{"role": "user", "content": item.prompt}], params)
                label, score, meta = await grade(item, reply.text)
                record = EvalItem(
                    item.id, item.prompt, reply.text, label, score, {**meta, "finish_reason": reply.finish_reason}
                )
            except ModelCallError as exc:
                record = EvalItem(item.id, item.prompt, "", "error", None, {"error": str(exc)[:500]})
            store.add_eval_item(eid, record)
            progress.advance(task)

    with progress:
        task = progress.add_task(redact_values(title or eid), total=len(items), completed=len(items) - len(todo))
        await asyncio.gather(*(one(it) for it in todo))
    return {k: v for k, v in store.eval_items(eid).items() if k in {it.id for it in items}}


async def run_eval(
    store: RunStore,
    kind: str,
    identity: dict,
    config,
    target: ChatModel,
    items: list[Item],
    grade: Grader,
    summarise: Callable[[list[EvalItem]], dict],
    *,
    max_tokens: int,
    show_progress: bool = True,
    title: str = "",
) -> dict:
    """The body every single-turn eval shares: the eval id from `identity`, the items run greedily and graded
    (resuming what is stored), `summarise(stored items)` recorded as the eval's result and returned with its id.
    `config`: the eval's Config (its `target`, `concurrency` and dump are recorded)."""
    eid = eval_id(kind, identity)
    store.ensure_eval(eid, kind, identity["target"], redact_values(config.model_dump()))
    stored = await run_items(
        store,
        eid,
        items,
        target,
        GenParams(temperature=0.0, max_tokens=max_tokens),
        grade,
        concurrency=config.concurrency,
        show_progress=show_progress,
        title=title,
    )
    result = summarise(list(stored.values()))
    store.finish_eval(eid, result)
    return {"eval_id": eid, **result}
