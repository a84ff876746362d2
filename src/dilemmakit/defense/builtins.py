"""The built-in defenses that ship inside the package, by name (`embedded-<name>` is `embedded?defense=<name>`).

    aligned     the model organism: an alias of its current version, today `aligned-v6` (`ALIASES`)
    aligned-v1  organism v1, the failed recipe: it follows no follow-up and picks options by position (builtin/README.md)
    aligned-v2  organism v2, a candidate that failed its pre-registered checks (builtin/README.md)
    aligned-v3  organism v3: recipe v2 rebalanced, content-first dilemma answers (builtin/README.md)
    aligned-v4  organism v4: contrastive benign requests, twice the dilemmas, rank 16 (builtin/README.md)
    aligned-v5  organism v5: v4 with more refusals in chats and all 450 training dilemmas (builtin/README.md)
    aligned-v6  organism v6: v5 with answered harmless requests late in chats, adapters on 12 layers (builtin/README.md)
    err         the ERR gate and adapters trained on top of `aligned-v6` by scripts/train_err.py
    err-v1      the ERR defense trained on top of `aligned-v1` (the numbers of the v1 section of builtin/README.md)

Light on purpose (no torch): model specs and run identities ask it without loading a model.
"""

from __future__ import annotations

from pathlib import Path

from dilemmakit import resources

# A stored run is identified by the sha1 of the weights it loaded, never by the alias: moving `aligned` to a new
# version starts new runs instead of resuming the old version's replies (`loading.identity`).
ALIASES = {"aligned": "aligned-v6"}
VERSIONS = ("aligned-v1", "aligned-v2", "aligned-v3", "aligned-v4", "aligned-v5", "aligned-v6", "err", "err-v1")
BUILTIN = (*ALIASES, *VERSIONS)


def canonical(name: str) -> str:
    """The versioned name behind a built-in name (`aligned` -> `aligned-v6`); other names unchanged."""
    return ALIASES.get(name, name)


def builtin_dir(name: str) -> Path:
    return resources.path("dilemmakit.defense", "builtin", canonical(name))


def is_builtin(ref: str) -> bool:
    return ref in BUILTIN
