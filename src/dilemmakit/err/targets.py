"""Offline reply targets: plain refusals (aligned adapter), Explain replies (ERR), Engage replies (the model itself).

The templates frame a refusal and an ethical analysis; they never contain harmful instructions.
"""

from __future__ import annotations

import hashlib
import random
from functools import lru_cache
from typing import TYPE_CHECKING

from dilemmakit import resources
from dilemmakit.models.base import GenParams, Message

if TYPE_CHECKING:
    from dilemmakit.engine import RowState


@lru_cache(maxsize=1)
def target_book() -> dict:
    return resources.read_json("dilemmakit.err", "prompts", "targets.json")


def refusal_target(rng: random.Random) -> str:
    return rng.choice(target_book()["refusals"])


def explain_target(rng: random.Random) -> str:
    book = target_book()
    return " ".join(rng.choice(book[k]) for k in ("explain_openings", "explain_frameworks", "explain_alternatives"))


def engage_trial_target(rng: random.Random, *, name: str, action: str) -> str:
    """Offline Engage answer to a dilemma whose Option A is a benign act: choose it, say why."""
    from string import Template

    return Template(rng.choice(target_book()["engage_trial"])).substitute(name=name, action=action)


def engage_targets(
    model,
    tokenizer,
    conversations: list[list[Message]],
    *,
    max_tokens: int = 96,
    batch: int = 16,
    row_state: RowState | None = None,
) -> list[str]:
    """The model's own greedy answers: training on them keeps benign behaviour where it was. `row_state`: the
    per-row state of a harm-gated defense installed on `model` (`Loaded.row_state`)."""
    from dilemmakit.engine import BatchingEngine

    engine = BatchingEngine(model, tokenizer, max_batch=batch, row_state=row_state)
    params = GenParams(temperature=0.0, max_tokens=max_tokens)
    out: list[str] = []
    for k in range(0, len(conversations), batch):
        out.extend(r.text for r in engine.generate_batch(conversations[k : k + batch], params))
    return out


def prompt_hash(prompt: str) -> str:
    return hashlib.sha1(" ".join(prompt.lower().split()).encode()).hexdigest()
