"""Follow-through: does a target carry out harmless follow-up requests after answering a benign dilemma?

Turn 1 is the dilemma, rendered as the packaged styles do (`dilemmas.render`); then each follow-up ("Now
write the note Tomasz leaves for the shift supervisor") is asked in the same conversation, with the model's
own earlier replies kept. Each follow-up reply is read by feature rules (`dilemmas.delivery`):
delivered, restated (only the chosen option again), refused, degenerate (a repetition loop) or other.
The rate is delivered / follow-ups asked, with a Wilson 95% interval.

Stored like the single-turn evals (`eval/itemrun.py`): one eval id from the identity, one stored item per
turn (`<dilemma id>/0` is turn 1, `/1`, `/2`... the follow-ups, each with its `messages`), so rerunning
the same command resumes; a conversation whose call failed is continued from its last stored turn.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from dataclasses import dataclass

from dilemmakit import dilemmas
from dilemmakit.config import Config, option
from dilemmakit.dilemmas.delivery import (
    DEGENERATE,
    DELIVERED,
    LABELS,
    MEASURE,
    OTHER,
    REFUSED,
    RESTATED,
    RULES_VERSION,
    classify_followup,
)
from dilemmakit.dilemmas.followups import FollowThroughDilemma, data_text, load_followthrough
from dilemmakit.errors import ModelCallError, UserError
from dilemmakit.eval.itemrun import eval_id, first_error
from dilemmakit.eval.stats import wilson_interval
from dilemmakit.loading import ModelPool, pool_scope, target_identity
from dilemmakit.models.base import ChatModel, GenParams, Message
from dilemmakit.models.spec import parse_spec
from dilemmakit.progress import progress_bar
from dilemmakit.store.db import EvalItem, RunStore

KIND = "followthrough"
TURN1 = "turn1"  # the label of a stored turn-1 reply (not counted in the rate)


class FollowThroughConfig(Config):
    target: str = option(help="Model spec")
    data: str | None = option(
        None, "JSONL dilemma rows with 'followups' (default: the 60 packaged held-out dilemmas, 2 follow-ups each)"
    )
    max_tokens: int = option(96, "Turn-1 reply length: room for the choice and a short justification", ge=1)
    followup_max_tokens: int = option(
        192, "Reply length for each follow-up: room for a short note or a few steps", ge=1
    )
    limit: int | None = option(None, "Use the first N dilemmas", ge=1)
    seed: int = option(0, "Seed for the instruction style and the option order of each dilemma")
    style: str | None = option(None, "One instruction style for every dilemma (default: drawn per dilemma)")
    concurrency: int = option(32, "Conversations in flight (a local model batches them)", ge=1)

    def check(self) -> None:
        parse_spec(self.target)
        if self.style is not None and self.style not in dilemmas.style_names():
            raise UserError(f"unknown --style {self.style!r}: use one of {', '.join(dilemmas.style_names())}")

    def identity(self) -> dict:
        """What names the eval: the target as stored runs name it (`target_identity`), and the settings."""
        return {
            **target_identity(self.target),
            "max_tokens": self.max_tokens,
            "followup_max_tokens": self.followup_max_tokens,
            "seed": self.seed,
            "style": self.style,
            "rules": RULES_VERSION,
            # the data's version: an edited file is a new eval, not a resumed one
            "data": hashlib.sha256(data_text(self.data).encode()).hexdigest()[:12],
        }


@dataclass(frozen=True)
class Conversation:
    row: FollowThroughDilemma
    prompt: str  # turn 1: the dilemma as a user message
    data: dict  # style, option order, reference choice


def conversations(config: FollowThroughConfig) -> list[Conversation]:
    """The dilemmas rendered with `config.seed` (the same prompts whatever the limit)."""
    rng = random.Random(config.seed)
    out = []
    for row in load_followthrough(config.data):
        shown = dilemmas.render(row.dilemma, style=config.style, rng=rng)
        data = {"reference": shown.choice, "family": row.dilemma.family, "style": shown.style, "swapped": shown.swapped}
        out.append(Conversation(row, shown.prompt, data))
    return out[: config.limit]


async def run_followthrough(
    config: FollowThroughConfig,
    store: RunStore,
    *,
    pool: ModelPool | None = None,
    show_progress: bool = True,
) -> dict:
    """Follow-through of `config.target` on the first `config.limit` dilemmas: stored, resumable."""
    config.check()
    todo = conversations(config)
    identity = config.identity()
    eid = eval_id(KIND, identity)
    store.ensure_eval(eid, KIND, identity["target"], config.model_dump())
    async with pool_scope(pool, concurrency=config.concurrency) as pool:
        target = pool.get(config.target)
        await pool.check_all()
        stored = await _run_conversations(store, eid, todo, target, config, show_progress=show_progress)
    result = followthrough_result(list(stored.values()), asked=sum(len(c.row.followups) for c in todo))
    store.finish_eval(eid, result)
    return {"eval_id": eid, **result}


async def measure_followthrough(
    target: str,
    store: RunStore,
    *,
    pool: ModelPool | None = None,
    limit: int | None = None,
    show_progress: bool = False,
    **options,
) -> dict:
    """Follow-through of one target on the packaged set (for the demo and `defend eval`): the result dict
    of `dilemma followthrough --json`."""
    config = FollowThroughConfig(target=target, limit=limit, **options)
    return await run_followthrough(config, store, pool=pool, show_progress=show_progress)


async def _run_conversations(
    store: RunStore,
    eid: str,
    todo: list[Conversation],
    model: ChatModel,
    config: FollowThroughConfig,
    *,
    show_progress: bool,
) -> dict[str, EvalItem]:
    done = store.eval_items(eid)
    sem = asyncio.Semaphore(config.concurrency)
    turn1 = GenParams(temperature=0.0, max_tokens=config.max_tokens)
    later = GenParams(temperature=0.0, max_tokens=config.followup_max_tokens)
    progress = progress_bar(show=show_progress)
    total = sum(1 + len(c.row.followups) for c in todo)

    async def converse(c: Conversation) -> None:
        d = c.row.dilemma
        messages: list[Message] = []
        earlier = [d.option_a, d.option_b]
        regenerate = False  # once a turn is asked again, the stored turns after it no longer follow from it
        requests = [c.prompt, *c.row.followups]
        for k, request in enumerate(requests):
            item_id = f"{d.id}/{k}"
            messages.append({"role": "user", "content": request})
            old = done.get(item_id)
            if old is not None and old.label != "error" and old.prompt == request and not regenerate:
                reply = old.output
            else:
                regenerate = True
                try:
                    async with sem:
                        answer = await model.generate(list(messages), turn1 if k == 0 else later)
                except ModelCallError as exc:
                    store.add_eval_item(eid, EvalItem(item_id, request, "", "error", None, {"error": str(exc)[:500]}))
                    progress.advance(task, len(requests) - k)
                    return
                reply = answer.text
                meta: dict = {**c.data, "turn": k, "finish_reason": answer.finish_reason}
                if k == 0:
                    label, score = TURN1, None
                    meta |= {"choice": dilemmas.parse_choice(reply), "engagement": dilemmas.grade_reply(reply)}
                else:
                    label = classify_followup(reply, request=request, scenario=d.scenario, earlier=earlier)
                    score = 1.0 if label == DELIVERED else 0.0
                    meta["measure"] = MEASURE
                meta["messages"] = [*messages, {"role": "assistant", "content": reply}]
                store.add_eval_item(eid, EvalItem(item_id, request, reply, label, score, meta))
            messages.append({"role": "assistant", "content": reply})
            earlier.append(reply)
            progress.advance(task)

    with progress:
        task = progress.add_task(f"dilemma followthrough: {config.target}", total=total)
        await asyncio.gather(*(converse(c) for c in todo))
    wanted = {f"{c.row.dilemma.id}/{k}" for c in todo for k in range(1 + len(c.row.followups))}
    return {k: v for k, v in store.eval_items(eid).items() if k in wanted}


def followthrough_result(items: list[EvalItem], *, asked: int) -> dict:
    """The rate over the follow-up replies (turn-1 replies are not counted); `asked`: follow-ups in the set."""
    graded = [it for it in items if it.label in LABELS]
    counts = {label: sum(1 for it in graded if it.label == label) for label in LABELS}
    low, high = wilson_interval(counts[DELIVERED], len(graded))
    return {
        "measure": MEASURE,
        "followthrough": round(counts[DELIVERED] / len(graded), 4) if graded else 0.0,
        "ci_low": round(low, 4),
        "ci_high": round(high, 4),
        "n": len(graded),
        "delivered": counts[DELIVERED],
        "restated": counts[RESTATED],
        "refused": counts[REFUSED],
        "degenerate": counts[DEGENERATE],
        "other": counts[OTHER],
        "errors": asked - len(graded),
        "first_error": first_error(items),
    }
