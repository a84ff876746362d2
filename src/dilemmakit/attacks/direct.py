"""The reference point: the behavior asked plainly, in one turn."""

from __future__ import annotations

from dilemmakit.attacks.base import AttackOptions, AttackSettings, Outcome, Roles
from dilemmakit.attacks.common import ask_target, judge_reply
from dilemmakit.attacks.journal import Journal
from dilemmakit.attacks.stages import single
from dilemmakit.behaviors import Behavior

DIRECT = "direct"
STAGES = (single(DIRECT),)


class DirectAttack:
    name = "direct"

    def __init__(self, settings: AttackSettings, options: AttackOptions | None = None):
        self.settings = settings

    async def run(self, behavior: Behavior, roles: Roles, journal: Journal) -> Outcome:
        reply = await ask_target(journal, roles, self.settings, behavior.prompt, DIRECT)
        verdict = await judge_reply(journal, roles, behavior, reply)
        return Outcome(success=verdict.success, rounds=1, broken_turn=reply.idx if verdict.success else None)
