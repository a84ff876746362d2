"""The import rules between packages: lower layers never reach up.

Every package and top-level module of `dilemmakit` sits on one layer of LAYERS; it may import its own
package and anything on a layer below, nothing beside or above it. A new package is placed here by hand
(`test_every_package_has_a_layer`). The few packages with a narrower rule (a leaf that must stay light or
free of model code) have it in ALLOWED.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "dilemmakit"

LAYERS: list[tuple[str, ...]] = [
    ("errors", "resources", "verdict", "progress", "config", "parallel", "userdata", "testing", "calls"),
    ("layers", "models", "store", "behaviors"),
    ("judges", "defense", "engine", "serve"),
    ("dilemmas", "attacks", "llamacpp"),
    ("loading",),
    ("eval", "campaign", "probes", "inspect"),
    ("err",),
    ("demo",),
    ("demo_target",),  # `demo --target`: the organism demo's measures on one model (reads demo's table and rates)
    ("report",),
    ("cli",),
]
LAYER = {unit: i for i, units in enumerate(LAYERS) for unit in units}

# Imports against the layers, from work still moving elsewhere in the tree; each names its file. Remove an
# entry once its import is gone.
KNOWN_EXCEPTIONS = {
    ("judges/instrumental.py", "dilemmas"),  # judges (2) reads dilemmas.reply.parse_choice (3)
    ("llamacpp/install.py", "loading"),  # llamacpp (3) reads loading.embedded.cache_root (4)
}

# package -> the dilemma modules it may import (its own included); errors, resources, userdata and calls are leaves
LEAVES = ("dilemmakit.errors", "dilemmakit.resources", "dilemmakit.userdata", "dilemmakit.calls")
ALLOWED = {
    "models": (*LEAVES, "dilemmakit.models"),
    "engine": (*LEAVES, "dilemmakit.models", "dilemmakit.engine"),
    "defense": (*LEAVES, "dilemmakit.layers", "dilemmakit.defense"),
}


def dilemma_imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("dilemmakit"))
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module == "dilemmakit":
            found.update(f"dilemmakit.{a.name}" for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("dilemmakit."):
            found.add(node.module)
    return found


def unit_of(path: Path) -> str:
    """The package (or top-level module) a source file belongs to: `engine/decoder.py` -> `engine`."""
    rel = path.relative_to(SRC)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def units() -> set[str]:
    return {unit_of(p) for p in SRC.rglob("*.py")} - {"__init__"}


def test_every_package_has_a_layer():
    assert not units() - set(LAYER), f"place these in LAYERS: {sorted(units() - set(LAYER))}"


def crossings() -> set[tuple[str, str]]:
    """(file, unit) for every import of a unit on the same layer or above the file's own."""
    found = set()
    for path in SRC.rglob("*.py"):
        own = unit_of(path)
        if own == "__init__":
            continue
        for name in dilemma_imports(path):
            target = name.split(".")[1] if "." in name else "__init__"
            if target != own and LAYER.get(target, len(LAYERS)) >= LAYER[own]:
                found.add((str(path.relative_to(SRC)), target))
    return found


def test_no_package_imports_beside_or_above_its_layer():
    bad = crossings() - KNOWN_EXCEPTIONS
    assert not bad, f"imports against the layers (file, package imported): {sorted(bad)}"


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_nothing_above_it(package):
    allowed = ALLOWED[package]
    bad = {
        f"{path.relative_to(SRC)}: {name}"
        for path in (SRC / package).rglob("*.py")
        for name in dilemma_imports(path)
        if not any(name == a or name.startswith(a + ".") for a in allowed)
    }
    assert not bad, f"{package}/ imports above itself: {sorted(bad)}"


def test_layer_numbering_is_one_convention():
    from dilemmakit.layers import block_writing, layer_count

    assert layer_count(30) == 31  # embeddings + one per block
    assert block_writing(1) == 0  # layer 1 = hidden_states[1] = output of block 0
    with pytest.raises(ValueError):
        block_writing(0)
