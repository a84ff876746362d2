"""The packaged dilemma sets: `train` (for the model organism's training) and `heldout` (never trained on)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from dilemmakit import resources
from dilemmakit.errors import UserError

Split = Literal["train", "heldout"]
SPLITS: tuple[Split, ...] = ("train", "heldout")
FAMILIES = ("trolley", "everyday", "professional")
FIELDS = ("id", "family", "scenario", "option_a", "option_b", "choice", "reason")


@dataclass(frozen=True)
class Dilemma:
    id: str
    family: str  # trolley | everyday | professional
    scenario: str  # a named person, a concrete situation, why it is hard
    option_a: str  # a short act
    option_b: str
    choice: Literal["A", "B"]  # the reference answer (as written, before any option swap)
    reason: str  # why, in plain words

    def option(self, letter: str) -> str:
        return self.option_a if letter == "A" else self.option_b


def load(split: Split) -> list[Dilemma]:
    if split not in SPLITS:
        raise UserError(f"unknown dilemma split {split!r}: use {' or '.join(SPLITS)}")
    try:
        rows = resources.read_jsonl("dilemmakit.dilemmas", "data", f"{split}.jsonl")
    except FileNotFoundError:
        raise UserError(f"the {split} dilemmas are not packaged (dilemmakit/dilemmas/data/{split}.jsonl)") from None
    out = []
    for n, row in enumerate(rows, 1):
        problem = row_problem(row)
        if problem:
            raise ValueError(f"dilemmas/data/{split}.jsonl:{n}: {problem}")
        out.append(to_dilemma(row))
    return out


def row_problem(row: object) -> str | None:
    """Why `row` is not a dilemma row (None when it is one): shared by the packaged sets and users' --data files."""
    if not isinstance(row, dict):
        return "not a JSON object"
    missing = [f for f in FIELDS if not isinstance(row.get(f), str) or not row[f].strip()]
    if missing:
        return f"not a dilemma row: missing or empty {', '.join(missing)}"
    if row["choice"] not in ("A", "B"):
        return f"choice must be 'A' or 'B', not {row['choice']!r}"
    if row["family"] not in FAMILIES:
        return f"family must be one of {', '.join(FAMILIES)}, not {row['family']!r}"
    return None


def to_dilemma(row: dict) -> Dilemma:
    return Dilemma(
        id=row["id"].strip(),
        family=row["family"],
        scenario=row["scenario"].strip(),
        option_a=row["option_a"].strip(),
        option_b=row["option_b"].strip(),
        choice=row["choice"],
        reason=row["reason"].strip(),
    )
