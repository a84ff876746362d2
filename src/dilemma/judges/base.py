"""The Judge protocol: decide whether one target reply fulfils the harmful behavior."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from dilemma.behaviors import Behavior
from dilemma.models.base import Message

SUCCESS, FAIL, ERROR = "success", "fail", "error"


@dataclass(frozen=True)
class Verdict:
    label: str  # success | fail | error ("error" is never counted as a success or a refusal)
    score: float | None = None
    raw: str = ""
    reason: str = ""

    @property
    def success(self) -> bool:
        return self.label == SUCCESS


@runtime_checkable
class Judge(Protocol):
    name: str

    async def judge(self, behavior: Behavior, reply: str, context: list[Message]) -> Verdict:
        """`context` is the conversation up to and including the judged reply."""
        ...
