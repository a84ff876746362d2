"""TRIAL's prompts and templates, read from the data files in prompts/."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from string import Template
from typing import Any

from dilemmakit import resources
from dilemmakit.attacks.trial.abstract_action import ActionTable
from dilemmakit.errors import UserError


def _read(name: str) -> str:
    return resources.read_text("dilemmakit.attacks.trial", "prompts", name)


@dataclass(frozen=True)
class Framework:
    key: str
    name: str
    brief: str
    tiebreaker: str


@dataclass(frozen=True)
class PromptBook:
    clue: Template
    scenario: Template
    init: Template
    pullback: str
    followup: Template
    followup_cases: dict[str, str]
    frameworks: dict[str, Framework]
    templates: dict[str, Any]
    actions: ActionTable  # the offline clue's abstract act and story per domain

    def framework(self, key: str) -> Framework:
        if key not in self.frameworks:
            raise UserError(f"unknown framework {key!r}: use one of {', '.join(self.frameworks)}")
        return self.frameworks[key]


@lru_cache(maxsize=1)
def prompt_book() -> PromptBook:
    frameworks = {
        k: Framework(k, v["name"], v["brief"], v["tiebreaker"]) for k, v in json.loads(_read("frameworks.json")).items()
    }
    return PromptBook(
        clue=Template(_read("clue.txt")),
        scenario=Template(_read("scenario.txt")),
        init=Template(_read("init.txt")),
        pullback=_read("pullback.txt").strip(),
        followup=Template(_read("followup.txt")),
        followup_cases=json.loads(_read("followup_cases.json")),
        frameworks=frameworks,
        templates=json.loads(_read("templates.json")),
        actions=ActionTable.from_json(json.loads(_read("abstract_actions.json"))),
    )


FRAMEWORKS = ("utilitarian", "deontological", "care", "virtue")
