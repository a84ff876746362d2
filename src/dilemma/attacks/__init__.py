"""Attacks: TRIAL and baselines, all storing the same conversation records through a Journal."""

from dilemma.attacks.base import Attack, AttackSettings, Outcome, Roles
from dilemma.attacks.registry import METHODS, build_attack

__all__ = ["Attack", "AttackSettings", "Outcome", "Roles", "METHODS", "build_attack"]
