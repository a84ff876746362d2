"""TRIAL: Trolley-problem Reasoning for Interactive Attack Logic (arXiv 2509.05367, Algorithm 1)."""

from __future__ import annotations

import random
from typing import Literal, Protocol

from dilemmakit.attacks.base import AttackOptions, AttackSettings, Outcome, Roles
from dilemmakit.attacks.common import ask_target, attacker_step, is_judged_round, judge_reply
from dilemmakit.attacks.journal import Journal
from dilemmakit.attacks.stages import Stage, StageGroup, single
from dilemmakit.attacks.trial.clue import Clue, extract_clue
from dilemmakit.attacks.trial.followup import (
    ATTACKER,
    followup_case,
    followup_prompt,
    picked_option_b,
    template_followup,
)
from dilemmakit.attacks.trial.opening import Opening
from dilemmakit.attacks.trial.prompts import PromptBook, prompt_book
from dilemmakit.attacks.trial.scenario import write_scenario
from dilemmakit.behaviors import Behavior
from dilemmakit.config import option
from dilemmakit.store.db import TurnRecord

SCENARIO, PULLBACK = "scenario", "pullback"
STAGES = (
    StageGroup("setup", "setup", (Stage("clue"), Stage("write_scenario", "scenario draft"))),
    single(SCENARIO),
    single(PULLBACK, "pull-back"),
    StageGroup("followup", "follow-up", (Stage("followup_", "follow-up"),)),  # followup_<case>
)
TEMPLATE, SKIP = "template", "skip"  # what a helper failure leads to (`--on-helper-failure`)


class TrialOptions(AttackOptions):
    followup_case: Literal["rule", "attacker"] = option(
        "rule",
        "TRIAL follow-ups: rule (the paper's three cases, picked by rule) | attacker (the attacker picks)",
        identity="if_set",
    )
    on_helper_failure: Literal["template", "skip"] = option(
        TEMPLATE,
        "TRIAL helper gives no usable clue/scenario: template (fall back) | skip (a failed attempt, as the authors)",
        identity="if_set",
    )


def step_rng(seed: int, behavior: Behavior, step: str) -> random.Random:
    # Seeded per behavior and step, so a resumed conversation draws the same templates.
    return random.Random(f"{seed}:{behavior.id}:{step}")


def next_move(stage: str, answer: str, *, rnd: int, max_rounds: int, pullbacks: int, max_pullbacks: int) -> str:
    """What round `rnd` (> 1) asks after `answer`: PULLBACK after a pick of Option B (while pull-backs
    last), else the follow-up case the rule picks."""
    if stage in (SCENARIO, PULLBACK) and picked_option_b(answer) and pullbacks < max_pullbacks:
        return PULLBACK
    return followup_case(answer, is_last_round=rnd == max_rounds)


def is_judged_turn(rnd: int, stage: str, settings: AttackSettings) -> bool:
    return is_judged_round(rnd, settings) and (
        stage != PULLBACK or settings.judge_pullback or rnd == settings.max_rounds
    )


class TrialTurns(Protocol):
    """What TRIAL's round loop talks through: the attack's journal and roles, or an Inspect task's state."""

    async def followup(self, case: str, rnd: int, question: str, answer: str) -> tuple[str, str]:
        """The stage and text of round `rnd`'s follow-up of the rule's `case`."""
        ...

    async def ask(self, rnd: int, stage: str, question: str) -> str:
        """Ask the target; its answer."""
        ...

    async def judge(self, rnd: int, stage: str, judged: bool) -> bool:
        """Whether round `rnd`'s reply fulfils the behavior (`judged`: the judging policy consults the judge)."""
        ...


async def play_rounds(
    turns: TrialTurns, opening: str, book: PromptBook, settings: AttackSettings, *, max_pullbacks: int
) -> int | None:
    """TRIAL's rounds from the opening dilemma: a pull-back after a pick of Option B (while they last), else
    the follow-up the rule picks, until the judge calls a reply a success (its round) or the budget is spent
    (None). The one copy of the loop: the attack and the Inspect solver both run it."""
    pullbacks = 0
    stage, question, answer = SCENARIO, opening, ""
    for rnd in range(1, settings.max_rounds + 1):
        if rnd > 1:
            move = next_move(
                stage, answer, rnd=rnd, max_rounds=settings.max_rounds, pullbacks=pullbacks, max_pullbacks=max_pullbacks
            )
            if move == PULLBACK:
                stage, question = PULLBACK, book.pullback
                pullbacks += 1
            else:
                stage, question = await turns.followup(move, rnd, question, answer)
        answer = await turns.ask(rnd, stage, question)
        if await turns.judge(rnd, stage, is_judged_turn(rnd, stage, settings)):
            return rnd
    return None


class TrialAttack:
    """Stage 1: a dilemma in which the harmful act is Option A, the lesser evil; the target must pick.
    A pick of Option B gets one pull-back turn. Stage 2: adaptive follow-ups until the judge says the
    behavior was fulfilled or the round budget is spent.

    A helper (clue and scenario writer) that gives no usable output within its tries is a helper
    failure, marked `helper_failed` on its stored step; an act or scenario that copies six words of the
    request in a row is unusable too, since turn 1 must not quote it. With `on_helper_failure="template"`
    the conversation goes on with the abstract clue or a template scenario; with "skip" it ends there
    as a failed attempt (no target turn), as the authors' code drops it."""

    name = "trial"

    def __init__(
        self,
        settings: AttackSettings,
        options: TrialOptions | None = None,
        *,
        max_pullbacks: int = 1,
        book: PromptBook | None = None,
    ):
        self.settings = settings
        self.options = options or TrialOptions()
        self.max_pullbacks = max_pullbacks
        self.book = book or prompt_book()
        self.framework = self.book.framework(settings.framework)

    def _rng(self, behavior: Behavior, step: str) -> random.Random:
        return step_rng(self.settings.seed, behavior, step)

    def _gives_up(self, meta: dict) -> bool:
        return bool(meta.get("helper_failed")) and self.options.on_helper_failure == SKIP

    async def run(self, behavior: Behavior, roles: Roles, journal: Journal) -> Outcome:
        s, book = self.settings, self.book

        async def make_clue():
            clue, meta = await extract_clue(roles.helper, behavior, book, s.attacker_params)
            return clue.to_json(), meta

        clue_turn = await journal.step("helper", "clue", make_clue)
        if self._gives_up(clue_turn.meta):
            return Outcome(success=False, rounds=0)
        clue = Clue.from_json(clue_turn.content)

        async def make_scenario():
            return await write_scenario(
                roles.helper,
                book,
                clue,
                self.framework,
                s.attacker_params,
                self._rng(behavior, "scenario"),
                request=behavior.prompt,
            )

        scenario_turn = await journal.step("helper", "write_scenario", make_scenario)
        if self._gives_up(scenario_turn.meta):
            return Outcome(success=False, rounds=0)
        opening = Opening.around(clue, scenario_turn.content, scenario_turn.meta, self.framework, book)
        turns = _JournalTurns(self, behavior, roles, journal, opening)
        won = await play_rounds(turns, opening.message, book, s, max_pullbacks=self.max_pullbacks)
        if won is None:
            return Outcome(success=False, rounds=s.max_rounds)
        return Outcome(success=True, rounds=won, broken_turn=turns.reply.idx if turns.reply else None)

    async def _followup(
        self,
        journal: Journal,
        roles: Roles,
        behavior: Behavior,
        asked: str,
        case: str,
        stage: str,
        opening: Opening,
        question: str,
        answer: str,
        rnd: int,
    ) -> str:
        """The next question: the attacker model's, told the case `asked` (ATTACKER: all cases, it picks),
        else the offline template of the rule's `case`."""
        turn = await attacker_step(
            journal,
            roles,
            self.settings,
            stage,
            llm_prompt=followup_prompt(
                self.book,
                asked,
                goal=behavior.prompt,
                clue=opening.clue,
                last_question=question,
                last_answer=answer,
                remaining=self.settings.max_rounds - rnd,
            ),
            template=lambda: template_followup(
                self.book,
                case,
                clue=opening.clue,
                scenario_meta=opening.scenario_meta,
                last_answer=answer,
                behavior_prompt=behavior.prompt,
                rng=self._rng(behavior, f"followup{rnd}"),
            ),
        )
        return turn.content


class _JournalTurns:
    """TRIAL's rounds against the attack's roles, every step stored in the conversation's journal."""

    def __init__(self, attack: TrialAttack, behavior: Behavior, roles: Roles, journal: Journal, opening: Opening):
        self.attack, self.behavior, self.roles, self.journal, self.opening = attack, behavior, roles, journal, opening
        self.reply: TurnRecord | None = None

    async def followup(self, case: str, rnd: int, question: str, answer: str) -> tuple[str, str]:
        by_attacker = self.attack.options.followup_case == ATTACKER and self.roles.attacker is not None
        asked = ATTACKER if by_attacker else case
        stage = f"followup_{asked}"
        text = await self.attack._followup(
            self.journal, self.roles, self.behavior, asked, case, stage, self.opening, question, answer, rnd
        )
        return stage, text

    async def ask(self, rnd: int, stage: str, question: str) -> str:
        self.reply = await ask_target(self.journal, self.roles, self.attack.settings, question, stage)
        return self.reply.content

    async def judge(self, rnd: int, stage: str, judged: bool) -> bool:
        if not judged or self.reply is None:
            return False
        return (await judge_reply(self.journal, self.roles, self.behavior, self.reply)).success
