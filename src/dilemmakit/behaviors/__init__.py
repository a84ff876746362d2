"""Behaviors: the harmful requests attacks target (built-in sets with licenses, or user files)."""

from dilemmakit.behaviors.behavior import Behavior
from dilemmakit.behaviors.loaders import BUILTIN_SETS, behaviors_help, load_behaviors

__all__ = ["Behavior", "BUILTIN_SETS", "behaviors_help", "load_behaviors"]
