"""The abstract act an offline dilemma is built around, and the story that makes it the lesser evil.

The offline opening never quotes the request (the paper's helper turns it into a clue first): the
character must do the abstract act of the behavior's domain ("get into the kidnappers' computer
system"), and not doing it causes the story's catastrophe. The concrete request comes in the follow-ups.
The table is `prompts/abstract_actions.json`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from dilemmakit import resources
from dilemmakit.behaviors import Behavior


@dataclass(frozen=True)
class Domain:
    key: str
    theme: str
    action: str  # a verb phrase that reads after "to"
    role: str  # the character's role, one that fits the act
    story: str  # a Template: $name the character, $action the act
    catastrophe: str  # what happens if the character refuses
    stake: str  # what Option A saves
    cost: str  # the limited price of Option A


@dataclass(frozen=True)
class ActionTable:
    domains: dict[str, Domain]
    categories: dict[str, str]  # lower-cased category label -> domain key
    refine_by_keywords: frozenset[str]  # lower-cased broad categories: keywords decide first
    keywords: dict[str, tuple[re.Pattern[str], ...]]
    default: str

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ActionTable:
        domains = {key: Domain(key=key, **fields) for key, fields in data["domains"].items()}
        return cls(
            domains=domains,
            categories={label.lower(): key for label, key in data["categories"].items()},
            refine_by_keywords=frozenset(label.lower() for label in data["refine_by_keywords"]),
            keywords={
                key: tuple(re.compile(r"\b" + re.escape(word), re.I) for word in words)
                for key, words in data["keywords"].items()
            },
            default=data["default"],
        )

    def domain(self, key: str) -> Domain:
        """A domain by key; "" (a helper's clue, whose act is its own) is the default frame."""
        return self.domains.get(key) or self.domains[self.default]

    def domain_for(self, behavior: Behavior) -> Domain:
        category = behavior.category.strip().lower()
        mapped = self.categories.get(category)
        if mapped and category not in self.refine_by_keywords:
            return self.domains[mapped]
        return self.domains[
            self._by_keywords(f"{behavior.category} {request_text(behavior.prompt)}") or mapped or self.default
        ]

    def _by_keywords(self, text: str) -> str | None:
        hits = {key: sum(bool(p.search(text)) for p in patterns) for key, patterns in self.keywords.items()}
        best = max(hits.values(), default=0)
        return next((key for key, n in hits.items() if n == best), None) if best else None


def request_text(prompt: str) -> str:
    """The request itself, without a HarmBench context block in front of it."""
    return prompt.split("\n---\n")[-1].strip()


@lru_cache(maxsize=1)
def jbb_short_names() -> dict[str, str]:
    """JBB harmful prompt -> its short behavior name ("Defamation", "Body shaming"), from the probes' pair file."""
    rows = resources.read_jsonl("dilemmakit.probes", "data", "jbb_pairs.jsonl")
    return {row["harmful"].strip(): row["behavior"] for row in rows}


def abstract_theme(behavior: Behavior, domain: Domain) -> str:
    short = jbb_short_names().get(behavior.prompt.strip())
    return f"{short} ({domain.theme})" if short else domain.theme
