"""ERR: Layer-Stratified Harm-Gated LoRA (the defense half of arXiv 2509.05367)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dilemmakit.defense.builtins import BUILTIN, builtin_dir
    from dilemmakit.defense.config import DefenseConfig
    from dilemmakit.defense.gate import GateState, HarmGate
    from dilemmakit.defense.lora import HarmGatedLinear
    from dilemmakit.defense.model import Defense, has_defense, install_defense, load_defense, save_defense

# Names resolve on first use: `dilemmakit.defense.config` is read by commands that never load a model,
# and importing it must not import torch (which the other submodules need).
_HOMES = {
    "DefenseConfig": "config",
    "BUILTIN": "builtins",
    "builtin_dir": "builtins",
    "GateState": "gate",
    "HarmGate": "gate",
    "HarmGatedLinear": "lora",
    "Defense": "model",
    "has_defense": "model",
    "install_defense": "model",
    "load_defense": "model",
    "save_defense": "model",
}


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)


__all__ = [
    "BUILTIN",
    "builtin_dir",
    "DefenseConfig",
    "Defense",
    "GateState",
    "HarmGate",
    "HarmGatedLinear",
    "has_defense",
    "install_defense",
    "load_defense",
    "save_defense",
]
