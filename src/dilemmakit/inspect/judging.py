"""Judging one assistant turn of an Inspect conversation with a judge from our registry."""

from __future__ import annotations

import asyncio
import weakref

from inspect_ai.model import ChatMessage

from dilemmakit.behaviors import Behavior
from dilemmakit.judges import ERROR, Judge, Verdict
from dilemmakit.judges.registry import build_judge, split_judge_spec
from dilemmakit.loading.backends import load_model
from dilemmakit.models.base import Message

VERDICTS = "verdicts"  # an assistant message's metadata: {judge name: verdict}

# One judge per spec and event loop: an HTTP judge's client belongs to the loop that made it, and a
# local judge model should load once per eval, not once per sample.
_judges: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, Judge]] = weakref.WeakKeyDictionary()


class JudgeFailed(RuntimeError):
    """The judge gave no verdict: the sample is an error, never a success or a refusal."""


def judge_for(spec: str) -> Judge:
    judges = _judges.setdefault(asyncio.get_running_loop(), {})
    if spec not in judges:
        _, model_spec = split_judge_spec(spec)
        judges[spec] = build_judge(spec, load_model(model_spec) if model_spec else None)
    return judges[spec]


def as_messages(messages: list[ChatMessage]) -> list[Message]:
    return [{"role": m.role, "content": m.text} for m in messages]


async def judge_turn(judge: Judge, behavior: Behavior, messages: list[ChatMessage], index: int) -> Verdict:
    """The verdict on `messages[index]` (an assistant turn), stored in its metadata under the judge's
    name, or the one already stored there."""
    reply = messages[index]
    stored = (reply.metadata or {}).get(VERDICTS, {}).get(judge.name)
    if stored is not None:
        return Verdict(stored["label"], stored.get("score"), reason=stored.get("reason", ""), judge=judge.name)
    verdict = await judge.judge(behavior, reply.text, as_messages(messages[: index + 1]))
    if verdict.label == ERROR:
        raise JudgeFailed(f"judge {judge.name} gave no verdict on turn {index}: {verdict.reason or verdict.raw}")
    metadata = dict(reply.metadata or {})
    metadata[VERDICTS] = {
        **metadata.get(VERDICTS, {}),
        judge.name: {"label": verdict.label, "score": verdict.score, "reason": verdict.reason},
    }
    reply.metadata = metadata
    return verdict
