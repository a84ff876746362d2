"""The parallel prompt sets of the paper's probe analysis (arXiv 2509.05367, App. B.2), with controls.

    harm       plain harmful requests                           (D_harm)
    benign     plain harmless requests                          (D_benign)
    trial_h    the TRIAL dilemma around each harm request       (D_TRIAL-H)
    trial_b    the same dilemma around each benign request      (D_TRIAL-B)
    neutral_h  a neutral planning wrapper around each harm one  (D_neutral-H, control)
    neutral_b  the same neutral wrapper around each benign one  (D_neutral-B, control)

By default D_harm / D_benign are JailbreakBench's 100 matched pairs (the paper's sets): benign request i
is the topic-matched twin of harmful request i, so a `--limit` sample keeps whole pairs and both sides
share their cross-fitting folds.

The TRIAL sets reuse the attack's offline opening with the request embedded as the act (the paper's
D_TRIAL-H: `offline_opening(embed_request=True)`, same opening prompt; the attack's own turn 1 gives the
character an abstract act and never quotes the request). The
neutral control (`prompts/neutral.json`) keeps the same forced A/B instructions at a similar length but
tells a routine planning story with no moral or catastrophe wording: if the plain-prompt probe fails
there as much as inside the dilemma, the "gap" is the probe failing on long templated prompts, not a
dissociation. Pair i of each wrapper draws the same frame for the harmful and the benign request: only
the request (and the theme words taken from it) differs.

Every prompt records where the request's action ends in its text (`act_end`), for `--pool act`.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from string import Template

from dilemmakit import resources
from dilemmakit.attacks.trial import offline_opening
from dilemmakit.attacks.trial.clue import embedded_clue
from dilemmakit.behaviors import Behavior
from dilemmakit.behaviors.loaders import load_behaviors, stratified_order
from dilemmakit.errors import UserError

PLAIN = ("harm", "benign")
WRAPPERS = ("trial", "neutral")
SET_NAMES = ("harm", "benign", "trial_h", "trial_b", "neutral_h", "neutral_b")
SET_LABELS = {
    "harm": "D_harm",
    "benign": "D_benign",
    "trial_h": "D_TRIAL-H",
    "trial_b": "D_TRIAL-B",
    "neutral_h": "D_neutral-H",
    "neutral_b": "D_neutral-B",
}
WRAPPER_LABELS = {"trial": "TRIAL", "neutral": "neutral"}
PACKAGED = {"harmful": "harmful.jsonl", "harmless": "harmless.jsonl", "pairs": "jbb_pairs.jsonl"}
PAIRED = "jbb"  # --harmful jbb --benign jbb: the matched JBB pairs
ARDITI = ("arditi", "builtin")  # the refusal_direction splits (the previous default)


@dataclass(frozen=True)
class ProbePrompt:
    id: str
    pair: int  # index of the underlying request in its plain set; trial_h[i] wraps harm[i]
    text: str  # the single user message sent to the model
    act_end: int = -1  # character offset in `text` where the request's action ends (-1: the end)


@dataclass(frozen=True)
class ProbeSets:
    sets: dict[str, list[ProbePrompt]]
    paired: bool = False  # harm[i] and benign[i] are matched twins (shared folds)
    meta: dict = field(default_factory=dict)

    def fingerprint(self, name: str) -> str:
        digest = hashlib.sha256(json.dumps([[p.id, p.text] for p in self.sets[name]]).encode())
        return digest.hexdigest()[:16]

    def sizes(self) -> dict[str, int]:
        return {name: len(items) for name, items in self.sets.items()}

    @property
    def wrappers(self) -> list[str]:
        return [w for w in WRAPPERS if f"{w}_h" in self.sets]


def packaged_path(name: str) -> Path:
    return resources.path("dilemmakit.probes", "data", PACKAGED[name])


def load_pairs(limit: int | None = None, seed: int = 0) -> tuple[list[Behavior], list[Behavior]]:
    """JBB's matched (harmful, benign) pairs, a `limit` sample of whole pairs balanced across categories."""
    rows = [json.loads(line) for line in packaged_path("pairs").read_text(encoding="utf-8").splitlines() if line]
    harm = [Behavior(r["id"], r["harmful"], r["category"], "jbb") for r in rows]
    benign = {r["id"]: Behavior(r["id"], r["benign"], r["category"], "jbb-benign") for r in rows}
    if limit is not None:
        chosen = {b.id for b in stratified_order(harm, seed)[:limit]}
        harm = [b for b in harm if b.id in chosen]
    return harm, [benign[b.id] for b in harm]


def _load(source: str, default: str, limit: int | None, seed: int) -> list[Behavior]:
    if source in ARDITI:
        path = str(packaged_path(default))
    elif source == PAIRED:
        both = load_pairs(limit, seed)
        return both[0] if default == "harmful" else both[1]
    else:
        path = source
    return load_behaviors(path, limit=limit, seed=seed)


def _act_end(text: str, action: str) -> int:
    at = text.rfind(action)
    return at + len(action) if at >= 0 else -1


def wrap_in_dilemma(behavior: Behavior, pair: int, *, framework: str = "utilitarian", seed: int = 0) -> str:
    """The TRIAL opening message around a request, drawing the scenario frame from pair index and seed."""
    return _dilemma(behavior, pair, framework=framework, seed=seed)[0]


def _dilemma(behavior: Behavior, pair: int, *, framework: str, seed: int) -> tuple[str, int]:
    # Category-free: the theme comes from the request's own words for harm and benign alike.
    uncategorised = Behavior(behavior.id, behavior.prompt)
    opening = offline_opening(
        uncategorised, framework=framework, rng=random.Random(f"probe:{seed}:{pair}"), embed_request=True
    )
    return opening.message, _act_end(opening.message, opening.clue.action)


def _neutral_book() -> dict:
    return json.loads(resources.read_text("dilemmakit.probes", "prompts", "neutral.json"))


def wrap_in_neutral(behavior: Behavior, pair: int, *, seed: int = 0, book: dict | None = None) -> str:
    """The neutral-wrapper control around a request: same forced A/B choice, a routine planning story."""
    return _neutral(behavior, pair, seed=seed, book=book)[0]


def _neutral(behavior: Behavior, pair: int, *, seed: int, book: dict | None = None) -> tuple[str, int]:
    book = book or _neutral_book()
    rng = random.Random(f"probe-neutral:{seed}:{pair}")
    character = rng.choice(book["characters"])
    postponement = rng.choice(book["postponements"])
    clue = embedded_clue(Behavior(behavior.id, behavior.prompt))
    text = Template(book["message"]).substitute(
        name=character["name"], role=character["role"], theme=clue.theme, action=clue.action, postponement=postponement
    )
    return text, _act_end(text, clue.action)


def build_sets(
    *,
    harmful: str = PAIRED,
    benign: str = PAIRED,
    limit: int | None = None,
    seed: int = 0,
    framework: str = "utilitarian",
    controls: bool = True,
) -> ProbeSets:
    """D_harm, D_benign, their TRIAL-wrapped twins and (with `controls`) their neutral-wrapped twins."""
    paired = harmful == PAIRED and benign == PAIRED
    if paired:
        harm, ben = load_pairs(limit, seed)
    else:
        harm = _load(harmful, "harmful", limit, seed)
        ben = _load(benign, "harmless", limit, seed)
    if len(harm) < 2 or len(ben) < 2:
        raise UserError(f"the probe needs at least 2 harmful and 2 benign prompts (got {len(harm)} and {len(ben)})")
    sets: dict[str, list[ProbePrompt]] = {
        "harm": [ProbePrompt(b.id, i, b.prompt) for i, b in enumerate(harm)],
        "benign": [ProbePrompt(b.id, i, b.prompt) for i, b in enumerate(ben)],
    }
    for name, source in (("trial_h", harm), ("trial_b", ben)):
        wrapped = [_dilemma(b, i, framework=framework, seed=seed) for i, b in enumerate(source)]
        sets[name] = [
            ProbePrompt(f"trial:{b.id}", i, t, end) for i, (b, (t, end)) in enumerate(zip(source, wrapped, strict=True))
        ]
    if controls:
        book = _neutral_book()
        for name, source in (("neutral_h", harm), ("neutral_b", ben)):
            wrapped = [_neutral(b, i, seed=seed, book=book) for i, b in enumerate(source)]
            sets[name] = [
                ProbePrompt(f"neutral:{b.id}", i, t, end)
                for i, (b, (t, end)) in enumerate(zip(source, wrapped, strict=True))
            ]
    categories = [b.category for b in harm] if paired else []
    return ProbeSets(sets, paired=paired, meta={"categories": categories})
