"""Attacks: TRIAL and baselines, all storing the same conversation records through a Journal."""

from dilemmakit.attacks.base import Attack, AttackOptions, AttackSettings, Outcome, Roles
from dilemmakit.attacks.common import ask_target, judge_reply
from dilemmakit.attacks.journal import Journal, ReplayMismatch
from dilemmakit.attacks.registry import (
    METHODS,
    Method,
    build_attack,
    method,
    methods_help,
    option_fields,
    stage_table,
)

__all__ = [
    "Attack",
    "AttackSettings",
    "AttackOptions",
    "Method",
    "method",
    "methods_help",
    "option_fields",
    "stage_table",
    "Outcome",
    "Roles",
    "Journal",
    "ReplayMismatch",
    "METHODS",
    "build_attack",
    "ask_target",
    "judge_reply",
]
