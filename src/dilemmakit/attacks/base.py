"""The Attack protocol and what every attack is handed: roles, budget settings, its own options, a journal."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from dilemmakit.attacks.journal import Journal
from dilemmakit.behaviors import Behavior
from dilemmakit.config import Config
from dilemmakit.judges.base import Judge
from dilemmakit.models.base import ChatModel, GenParams


@dataclass
class Roles:
    """The models an attack talks to. attacker/helper are None in offline template mode."""

    target: ChatModel
    judge: Judge
    attacker: ChatModel | None = None
    helper: ChatModel | None = None


@dataclass(frozen=True)
class AttackSettings:
    """Settings shared by all attacks (defaults follow the paper, section E.8). An attack's own options
    (PAIR's streams, ...) are its `AttackOptions`."""

    max_rounds: int = 6
    judge_skip_rounds: int = 2  # the judge is not consulted on rounds 1..N (the final round is always judged)
    # framework and judge_pullback are TRIAL's, kept here because every stored run's identity has them
    judge_pullback: bool = False
    framework: str = "utilitarian"
    seed: int = 0
    target_params: GenParams = GenParams(temperature=1.0, max_tokens=1024)
    attacker_params: GenParams = GenParams(temperature=1.0, max_tokens=512)


class AttackOptions(Config):
    """An attack's own options: an attack with options subclasses this with `option()` fields (help,
    default, constraints, `identity=`) and registers it beside its builder (`attacks.registry`); the
    `attack` command and `--config` files derive their flags from it. An attack without options uses this
    class as it is."""


@dataclass(frozen=True)
class Outcome:
    success: bool
    rounds: int  # target turns used
    broken_turn: int | None = None  # journal idx of the reply judged successful


@runtime_checkable
class Attack(Protocol):
    name: str

    async def run(self, behavior: Behavior, roles: Roles, journal: Journal) -> Outcome: ...
