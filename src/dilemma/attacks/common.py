"""Steps shared by attacks: ask the target, judge a reply."""

from __future__ import annotations

from dilemma.attacks.base import AttackSettings, Roles
from dilemma.attacks.journal import Journal
from dilemma.behaviors import Behavior
from dilemma.store.db import TurnRecord, VerdictRecord


async def ask_target(journal: Journal, roles: Roles, settings: AttackSettings, user_text: str, stage: str) -> TurnRecord:
    """Send one user turn to the target and record both sides."""
    await journal.step("user", stage, lambda: _const(user_text))
    history = journal.messages()

    async def produce():
        reply = await roles.target.generate(history, settings.target_params)
        return reply.text, {"finish_reason": reply.finish_reason, "completion_tokens": reply.completion_tokens}

    return await journal.step("assistant", stage, produce)


async def judge_reply(journal: Journal, roles: Roles, behavior: Behavior, reply: TurnRecord) -> VerdictRecord:
    context = journal.messages()[: sum(1 for t in journal.turns[: reply.idx + 1] if t.role in ("user", "assistant"))]
    return await journal.verdict(reply.idx, roles.judge.name,
                                 lambda: roles.judge.judge(behavior, reply.content, context))


async def _const(text: str) -> str:
    return text
