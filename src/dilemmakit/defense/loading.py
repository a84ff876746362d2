"""Resolve a defense reference (a directory or a built-in name, `defense.builtins`) and put it on a loaded model."""

from __future__ import annotations

from pathlib import Path

from dilemmakit.defense.builtins import BUILTIN, builtin_dir, is_builtin
from dilemmakit.defense.config import CONFIG_NAME, DefenseConfig
from dilemmakit.defense.model import Defense, load_defense
from dilemmakit.errors import UserError


def resolve_defense(ref: str) -> Path:
    if is_builtin(ref):
        path = builtin_dir(ref)
        if not (path / CONFIG_NAME).exists():
            raise UserError(
                f"the built-in defense {ref!r} is not in this install: train it with scripts/train_{ref}.py"
            )
        return path
    path = Path(ref).expanduser()
    if not (path / CONFIG_NAME).exists():
        raise UserError(
            f"defense {ref!r} is neither a built-in ({', '.join(BUILTIN)}) nor a directory holding {CONFIG_NAME}"
        )
    return path


def defense_chain(ref: str | None) -> list[str]:
    """The defenses a model with defense `ref` loads: `ref` first, then those it requires, recursively."""
    refs: list[str] = []
    pending = [ref] if ref else []
    while pending:
        r = pending.pop()
        refs.append(r)
        pending.extend(DefenseConfig.load(resolve_defense(r)).requires)
    return refs


def apply_defense(model, ref: str) -> Defense:
    """Install defense `ref` on `model`; the defenses it requires are installed and merged first."""
    path = resolve_defense(ref)
    config = DefenseConfig.load(path)
    for required in config.requires:
        merge_defense(model, required)
    return load_defense(model, path)


def merge_defense(model, ref: str) -> None:
    """Fold a static (gate = 1) defense into the model's weights: afterwards it is a plain model."""
    defense = apply_defense(model, ref)
    if not defense.config.static_gate:
        raise UserError(f"defense {ref!r} has a harm gate and cannot be merged into the weights")
    defense.remove(model, merge=True)
