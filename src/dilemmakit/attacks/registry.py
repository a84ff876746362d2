"""Attack methods by name (`--method`), each with its builder and the model of its own options.

A new attack with options registers here once: its `AttackOptions` subclass gives the `attack` command its
flags (help, default, constraints), `--config` files their keys, and the run identity what each field
declares (`option(identity=...)`). Its stages (`attacks.stages`) give the report its labels and filter.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

from dilemmakit.attacks import actor, crescendo, direct, pair
from dilemmakit.attacks.actor import ActorAttack, ActorOptions
from dilemmakit.attacks.base import Attack, AttackOptions, AttackSettings
from dilemmakit.attacks.crescendo import CrescendoAttack
from dilemmakit.attacks.direct import DirectAttack
from dilemmakit.attacks.pair import PairAttack, PairOptions
from dilemmakit.attacks.stages import StageGroup, StageTable
from dilemmakit.attacks.trial import TrialAttack
from dilemmakit.attacks.trial import attack as trial
from dilemmakit.attacks.trial.attack import TrialOptions
from dilemmakit.errors import UserError


@dataclass(frozen=True)
class Method:
    build: Callable[[AttackSettings, Any], Attack]  # (settings, an instance of `options`)
    options: type[AttackOptions] = AttackOptions  # the base class itself: no options
    stages: tuple[StageGroup, ...] = ()  # the stages it stores turns under, as the report shows them


METHODS: dict[str, Method] = {
    "trial": Method(TrialAttack, TrialOptions, trial.STAGES),
    "direct": Method(DirectAttack, stages=direct.STAGES),
    "pair": Method(PairAttack, PairOptions, pair.STAGES),
    "crescendo": Method(CrescendoAttack, stages=crescendo.STAGES),
    "actor": Method(ActorAttack, ActorOptions, actor.STAGES),
}


def methods_help() -> str:
    return " | ".join(METHODS)


def method(name: str) -> Method:
    if name not in METHODS:
        raise UserError(f"unknown method {name!r}: use one of {', '.join(METHODS)}")
    return METHODS[name]


def option_fields() -> dict[str, tuple[type[AttackOptions], Any]]:
    """Every registered attack's options by field name, with the model that owns each (one command line
    carries them all). Two attacks may share a name only with the same declaration."""
    fields: dict[str, tuple[type[AttackOptions], Any]] = {}
    for entry in METHODS.values():
        for name, field in entry.options.model_fields.items():
            if name in fields and fields[name][1] != field:
                raise TypeError(f"attack option {name!r} is declared twice, differently")
            fields.setdefault(name, (entry.options, field))
    return fields


@cache
def stage_table() -> StageTable:
    """Every registered attack's stages, in registration order (two attacks may share a group only with the
    same declaration)."""
    return StageTable(group for entry in METHODS.values() for group in entry.stages)


def build_attack(name: str, settings: AttackSettings, options: AttackOptions | None = None) -> Attack:
    entry = method(name)
    return entry.build(settings, options if options is not None else entry.options())
