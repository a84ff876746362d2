"""The built-in defenses that ship inside the package, by name (`embedded-<name>` is `embedded?defense=<name>`).

    aligned     the model organism (v1): a plain LoRA refusal adapter that makes the embedded model refuse harmful requests
    aligned-v2  organism v2, a candidate that failed its pre-registered checks (builtin/README.md)
    aligned-v3  organism v3: recipe v2 rebalanced, content-first dilemma answers (builtin/README.md)
    aligned-v4  organism v4: contrastive benign requests, twice the dilemmas, rank 16 (builtin/README.md)
    aligned-v5  organism v5: v4 with more refusals in chats and all 450 training dilemmas (builtin/README.md)
    aligned-v6  organism v6: v5 with answered harmless requests late in chats, adapters on 12 layers (builtin/README.md)
    err       the ERR gate and adapters trained on top of `aligned` by scripts/train_err.py

Light on purpose (no torch): model specs and run identities ask it without loading a model.
"""

from __future__ import annotations

from pathlib import Path

from dilemmakit import resources

BUILTIN = ("aligned", "aligned-v2", "aligned-v3", "aligned-v4", "aligned-v5", "aligned-v6", "err")


def builtin_dir(name: str) -> Path:
    return resources.path("dilemmakit.defense", "builtin", name)


def is_builtin(ref: str) -> bool:
    return ref in BUILTIN
