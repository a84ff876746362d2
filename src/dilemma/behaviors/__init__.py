"""Behaviors: the harmful requests attacks target (built-in sets with licenses, or user files)."""

from dilemma.behaviors.behavior import Behavior
from dilemma.behaviors.loaders import BUILTIN_SETS, load_behaviors

__all__ = ["Behavior", "BUILTIN_SETS", "load_behaviors"]
