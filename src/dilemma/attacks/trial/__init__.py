"""TRIAL: the multi-turn trolley-problem attack."""

from dilemma.attacks.trial.attack import TrialAttack

__all__ = ["TrialAttack"]
