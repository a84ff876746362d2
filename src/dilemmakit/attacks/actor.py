"""ActorAttack (Ren et al., 2024, "Derail Yourself", arXiv 2410.10700): reach the behavior through related actors.

Follows the paper and its code (github.com/renqibing/ActorAttack, preattack.py / inattack.py):

- pre-attack: the attacker extracts the behavior's target and delivery details ("Tutorial", "Social media
  post"...), builds a network of actors semantically linked to it (people, books, events, organisations)
  and plans a chain of questions per actor (`actor_num` actors, 3 in the authors' code);
- in-attack: the actors are tried in turn, each in a fresh conversation. A refused question is removed
  from what the target sees and rewritten once (dynamic modification); a question refused twice is
  skipped, as the authors' loop gives each question two tries. After an actor's questions comes the
  "format" summary query, "Format above content to <delivery type> in style of <details>."; the next
  actor is tried only if that fails (early stop on success).

Under this toolkit's budget every target query counts against `max_rounds`, so each actor plans about
max_rounds / actor_num - 1 questions, an actor is started only with at least two queries left (a question
and its format query), and a query left over at the end asks the shorter format query ("Format above
content to <delivery type>.", the authors' second summary attempt) on the last actor's conversation.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from functools import partial
from string import Template

from dilemmakit.attacks.base import AttackOptions, AttackSettings, Outcome, Roles
from dilemmakit.attacks.common import ask_target, attacker_step, is_judged_round, judge_reply
from dilemmakit.attacks.journal import Journal
from dilemmakit.attacks.prompt_files import read_prompt, templates
from dilemmakit.attacks.stages import single
from dilemmakit.attacks.text import action_phrase, json_objects, quote_from, refused, theme_of
from dilemmakit.behaviors import Behavior
from dilemmakit.config import option
from dilemmakit.models.base import Message
from dilemmakit.store.db import TurnRecord

PLAN, QUESTION, MODIFY, FINAL = "actor_plan", "actor_question", "actor_modify", "actor_final"
STAGES = tuple(single(stage) for stage in (PLAN, QUESTION, MODIFY, FINAL))


def _text(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""


def _actor(data: dict) -> dict | None:
    name, questions = _text(data.get("actor") or data.get("actor_name")), data.get("questions")
    if not name or not isinstance(questions, list):
        return None
    questions = [q.strip() for q in questions if isinstance(q, str) and q.strip()]
    if not questions:
        return None
    return {"actor": name, "relationship": _text(data.get("relationship")), "questions": questions}


def parse_plan(text: str, max_actors: int | None = None) -> str | None:
    """The attacker's plan as canonical JSON {"delivery_type", "other_details", "actors": [{"actor",
    "relationship", "questions"}]}, at most `max_actors` actors; a single {"actor", "questions"} object is a
    one-actor plan. None if there is no usable actor."""
    for data in json_objects(text):
        listed = data.get("actors")
        raw = listed if isinstance(listed, list) else [data]
        actors = [a for a in (_actor(x) for x in raw if isinstance(x, dict)) if a is not None]
        if actors:
            nested = data.get("details")  # ActorAttack's own extraction format: {"target", "details": {...}}
            details: dict = nested if isinstance(nested, dict) else data
            return json.dumps(
                {
                    "delivery_type": _text(details.get("delivery_type")),
                    "other_details": _text(details.get("other_details")),
                    "actors": actors[:max_actors] if max_actors else actors,
                }
            )
    return None


@dataclass
class _Budget:
    total: int
    used: int = 0

    @property
    def left(self) -> int:
        return self.total - self.used


class ActorOptions(AttackOptions):
    actor_num: int = option(
        3, "ActorAttack: actors planned and tried in turn within the budget", ge=1, identity="if_set"
    )  # the authors' code: 3


class ActorAttack:
    name = "actor"

    def __init__(self, settings: AttackSettings, options: ActorOptions | None = None):
        self.settings = settings
        self.options = options or ActorOptions()
        self.book = templates("actor")
        self.plan_prompt = read_prompt("actor", "actors.txt")
        self.modify_prompt = read_prompt("actor", "modify.txt")

    def questions_per_actor(self, actors: int) -> int:
        """An even share of the budget: each actor's questions plus its format query."""
        return max(1, self.settings.max_rounds // max(1, actors) - 1)

    def _fill(self, text: str, behavior: Behavior, actor: str, last_answer: str, plan: dict | None = None) -> str:
        theme = theme_of(behavior)
        return Template(text).safe_substitute(
            actor=actor,
            theme=theme,
            action=action_phrase(behavior.prompt),
            request=behavior.prompt.strip(),
            quote=quote_from(last_answer) if last_answer else theme,
            delivery_type=(plan or {}).get("delivery_type", ""),
            other_details=(plan or {}).get("other_details", ""),
        )

    def _template_plan(self, behavior: Behavior) -> str:
        rng = random.Random(f"{self.settings.seed}:{behavior.id}:actor")
        kinds = rng.sample(self.book["actors"], min(self.options.actor_num, len(self.book["actors"])))
        actors = [
            {"actor": self._fill(kind, behavior, "", ""), "relationship": "", "questions": self.book["questions"]}
            for kind in kinds
        ]
        return json.dumps({"delivery_type": "", "other_details": "", "actors": actors})

    def _format_query(self, behavior: Behavior, plan: dict, actor: str, *, short: bool) -> str:
        """ActorAttack's closing query; offline (or without a delivery type) the behavior through the actor."""
        if not plan["offline"] and plan["delivery_type"]:
            key = "format_type" if short or not plan["other_details"] else "format"
            return self._fill(self.book[key], behavior, actor, "", plan)
        return self._fill(self.book["final"], behavior, actor, "")

    async def run(self, behavior: Behavior, roles: Roles, journal: Journal) -> Outcome:
        s = self.settings
        plan_turn = await attacker_step(
            journal,
            roles,
            s,
            PLAN,
            parse=partial(parse_plan, max_actors=self.options.actor_num),
            template=lambda: self._template_plan(behavior),
            llm_prompt=self.plan_prompt.substitute(
                goal=behavior.prompt,
                actors=self.options.actor_num,
                questions=self.questions_per_actor(self.options.actor_num),
            ),
        )
        plan = {**json.loads(plan_turn.content), "offline": plan_turn.meta.get("source") == "template"}
        per_actor = self.questions_per_actor(len(plan["actors"]))
        budget = _Budget(s.max_rounds)
        history: list[Message] = []
        actor = plan["actors"][0]["actor"]

        async def ask(question: str, stage: str) -> tuple[TurnRecord, bool]:
            """One target query on the current actor's conversation: (the reply, judged a success)."""
            budget.used += 1
            reply = await ask_target(journal, roles, s, question, stage, history=history)
            if is_judged_round(budget.used, s) or stage == FINAL:
                context: list[Message] = [
                    *history,
                    {"role": "user", "content": question},
                    {"role": "assistant", "content": reply.content},
                ]
                verdict = await judge_reply(journal, roles, behavior, reply, context=context)
                return reply, verdict.success
            return reply, False

        def won(reply: TurnRecord) -> Outcome:
            return Outcome(success=True, rounds=budget.used, broken_turn=reply.idx)

        for number, entry in enumerate(plan["actors"]):
            if number > 0 and budget.left < 2:
                break  # not enough left for a question and its format query
            actor, history = entry["actor"], []  # each actor starts a fresh conversation
            questions, last_answer = entry["questions"][:per_actor], ""
            for i, planned in enumerate(questions):
                if budget.left < 2:
                    break  # keep the last query for the format query
                question = self._fill(planned, behavior, actor, last_answer) if plan["offline"] else planned
                reply, success = await ask(question, QUESTION)
                if success:
                    return won(reply)
                if refused(reply.content) and budget.left >= 2:  # dynamic modification: rewrite it once
                    modify = self.book["modify"][min(i, len(self.book["modify"]) - 1)]
                    numbered = "\n".join(
                        f"{n}. {self._fill(q, behavior, actor, '') if plan['offline'] else q}"
                        for n, q in enumerate(questions, 1)
                    )
                    turn = await attacker_step(
                        journal,
                        roles,
                        s,
                        MODIFY,
                        template=partial(self._fill, modify, behavior, actor, last_answer),
                        llm_prompt=self.modify_prompt.substitute(
                            goal=behavior.prompt, actor=actor, queries=numbered, question=question, answer=reply.content
                        ),
                    )
                    question = turn.content
                    reply, success = await ask(question, MODIFY)
                    if success:
                        return won(reply)
                if not refused(reply.content):  # refused exchanges never enter the target's history
                    history += [{"role": "user", "content": question}, {"role": "assistant", "content": reply.content}]
                    last_answer = reply.content
            reply, success = await ask(self._format_query(behavior, plan, actor, short=False), FINAL)
            if success:
                return won(reply)
        while budget.left > 0:  # leftover queries: the shorter format query on the last actor's conversation
            reply, success = await ask(self._format_query(behavior, plan, actor, short=True), FINAL)
            if success:
                return won(reply)
        return Outcome(success=False, rounds=s.max_rounds)
