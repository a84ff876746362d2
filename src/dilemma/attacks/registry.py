"""Attack methods by name (`--method`)."""

from __future__ import annotations

from typing import Callable

from dilemma.attacks.actor import ActorAttack
from dilemma.attacks.base import Attack, AttackSettings
from dilemma.attacks.crescendo import CrescendoAttack
from dilemma.attacks.direct import DirectAttack
from dilemma.attacks.pair import PairAttack
from dilemma.attacks.trial import TrialAttack
from dilemma.errors import UserError

METHODS: dict[str, Callable[[AttackSettings], Attack]] = {
    "trial": TrialAttack,
    "direct": DirectAttack,
    "pair": PairAttack,
    "crescendo": CrescendoAttack,
    "actor": ActorAttack,
}


def build_attack(method: str, settings: AttackSettings) -> Attack:
    if method not in METHODS:
        raise UserError(f"unknown method {method!r}: use one of {', '.join(METHODS)}")
    return METHODS[method](settings)
