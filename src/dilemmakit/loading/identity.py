"""What names a target in stored runs and evals: its spec's identity, and the sums of the defense weights it loads.

Runs and evals are resumed by identity, so this is the one place that says what a target is: change it and
every stored run of that target starts afresh (`tests/test_identity_pins.py` pins it).
"""

from __future__ import annotations

import hashlib

from dilemmakit.models.spec import ModelSpec, parse_spec


def target_identity(spec: ModelSpec | str) -> dict:
    """`{"target": <spec identity>}`, plus `"defense_weights"` for a defended spec (`weights_identity`)."""
    spec = parse_spec(spec) if isinstance(spec, str) else spec
    return {"target": spec.identity, **weights_identity(spec)}


def defense_refs(spec: ModelSpec | str) -> list[str]:
    """The defenses a spec loads: the named one first, then those it requires; [] for a spec without one."""
    spec = parse_spec(spec) if isinstance(spec, str) else spec
    ref = spec.options.get("defense")
    if not ref:
        return []
    from dilemmakit.defense.loading import defense_chain

    return defense_chain(ref)


def defense_weights(spec: ModelSpec | str) -> dict[str, str]:
    """sha1 of the weights file of each defense a spec loads (`defense_refs`); {} for a spec without a
    defense. A defense retrained under the same name or into the same directory gets new sums."""
    refs = defense_refs(spec)
    if not refs:
        return {}
    from dilemmakit.defense.config import WEIGHTS_NAME
    from dilemmakit.defense.loading import resolve_defense  # imports torch: only for a defended spec

    sums = {}
    for r in refs:
        path = resolve_defense(r) / WEIGHTS_NAME
        sums[r] = hashlib.sha1(path.read_bytes()).hexdigest() if path.exists() else ""
    return sums


def weights_identity(spec: ModelSpec | str) -> dict:
    """What a run's identity adds for a target's weights beyond its spec text: `{"defense_weights": ...}` for a
    defended spec, so conversations and evals answered by a defense's old weights are never resumed with its
    new ones; {} otherwise (undefended and remote targets keep their run ids)."""
    sums = defense_weights(spec)
    return {"defense_weights": sums} if sums else {}
