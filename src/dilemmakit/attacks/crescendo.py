"""Crescendo (Russinovich, Salem and Eldan, 2024, arXiv 2404.01833): gradual escalation with backtracking.

Questions start harmless and related, then climb a ladder toward the behavior, each one built on the
target's previous answer. When the target refuses, that exchange is erased from what the target sees
next (backtracking) and the step is asked again more gently. As in the paper's Crescendomation and
PyRIT's Crescendo orchestrator, the attacker still sees the refused question and the refusal (marked
as backtracked), so it knows what to rephrase; only the target forgets. Every target query, backtracked
or not, counts against `max_rounds`; the last round asks for the behavior itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from string import Template

from dilemmakit.attacks.base import AttackOptions, AttackSettings, Outcome, Roles
from dilemmakit.attacks.common import ask_target, attacker_step, is_judged_round, judge_reply
from dilemmakit.attacks.journal import Journal
from dilemmakit.attacks.prompt_files import read_prompt, templates
from dilemmakit.attacks.stages import single
from dilemmakit.attacks.text import action_phrase, quote_from, refused, theme_of
from dilemmakit.behaviors import Behavior
from dilemmakit.models.base import Message

ESCALATE, BACKTRACK, FINAL = "escalate", "backtrack", "final"
STAGES = tuple(single(f"crescendo_{mode}") for mode in (ESCALATE, BACKTRACK, FINAL))  # attacker and target turns alike


BACKTRACKED = "[BACKTRACKED: refused, erased from the target's memory]"


@dataclass(frozen=True)
class Exchange:
    """One question and its answer as the attacker sees them; a backtracked one is gone from the target's memory."""

    question: str
    answer: str
    backtracked: bool = False


def transcript(exchanges: list[Exchange], max_chars: int = 600) -> str:
    """The attacker's view of the conversation: every exchange, the backtracked ones marked."""
    if not exchanges:
        return "(nothing yet: this is the first message)"

    def cut(text: str) -> str:
        return text if len(text) <= max_chars else text[:max_chars] + "..."

    lines = []
    for e in exchanges:
        mark = f" {BACKTRACKED}" if e.backtracked else ""
        lines += [f"ATTACKER{mark}: {cut(e.question)}", f"TARGET{mark}: {cut(e.answer)}"]
    return "\n".join(lines)


class CrescendoAttack:
    name = "crescendo"

    def __init__(self, settings: AttackSettings, options: AttackOptions | None = None):
        self.settings = settings
        self.book = templates("crescendo")
        self.attacker_prompt = read_prompt("crescendo", "attacker.txt")

    def _template(self, behavior: Behavior, mode: str, step: int, last_answer: str) -> str:
        theme = theme_of(behavior)
        if mode == FINAL:
            text = self.book["final"]
        else:
            ladder = self.book["softer" if mode == BACKTRACK else "ladder"]
            text = ladder[min(step, len(ladder) - 1)]
        return Template(text).safe_substitute(
            theme=theme,
            action=action_phrase(behavior.prompt),
            request=behavior.prompt.strip(),
            quote=quote_from(last_answer) if last_answer else theme,
        )

    async def run(self, behavior: Behavior, roles: Roles, journal: Journal) -> Outcome:
        s = self.settings
        history: list[Message] = []  # what the target remembers: refused exchanges are erased
        seen: list[Exchange] = []  # what the attacker sees: every exchange, refused ones marked
        step, mode, last_answer = 0, ESCALATE, ""
        for rnd in range(1, s.max_rounds + 1):
            if rnd == s.max_rounds or (mode == ESCALATE and step >= len(self.book["ladder"])):
                mode = FINAL
            llm_prompt = self.attacker_prompt.substitute(
                goal=behavior.prompt,
                turn=rnd,
                turns=s.max_rounds,
                transcript=transcript(seen),
                instruction=self.book["instructions"][mode],
            )
            question = await attacker_step(
                journal,
                roles,
                s,
                f"crescendo_{mode}",
                llm_prompt=llm_prompt,
                template=partial(self._template, behavior, mode, step, last_answer),
            )
            reply = await ask_target(journal, roles, s, question.content, f"crescendo_{mode}", history=history)
            if is_judged_round(rnd, s) or mode == FINAL:
                verdict = await judge_reply(
                    journal,
                    roles,
                    behavior,
                    reply,
                    context=[
                        *history,
                        {"role": "user", "content": question.content},
                        {"role": "assistant", "content": reply.content},
                    ],
                )
                if verdict.success:
                    return Outcome(success=True, rounds=rnd, broken_turn=reply.idx)
            backtrack = refused(reply.content)
            seen.append(Exchange(question.content, reply.content, backtracked=backtrack))
            if backtrack:
                mode = BACKTRACK  # the exchange stays out of `history`: the target forgets it
            else:
                history += [
                    {"role": "user", "content": question.content},
                    {"role": "assistant", "content": reply.content},
                ]
                last_answer, step, mode = reply.content, step + 1, ESCALATE
        return Outcome(success=False, rounds=s.max_rounds)
