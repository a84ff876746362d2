"""Dilemmas from a JSONL file: the packaged follow-through set (held-out dilemmas, each with harmless
follow-up requests to carry the choice out) or a user's `--data` file in the same schema.

A row is a packaged dilemma row (`id, family, scenario, option_a, option_b, choice, reason`), plus
`"followups": [str, ...]` where follow-ups are asked. A malformed row is a UserError naming the file and line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from dilemmakit import resources
from dilemmakit.dilemmas.sets import Dilemma, row_problem, to_dilemma
from dilemmakit.errors import UserError
from dilemmakit.userdata import ENCODING, loads_json

PACKAGED = ("dilemmakit.dilemmas", "data", "followthrough.jsonl")


@dataclass(frozen=True)
class FollowThroughDilemma:
    dilemma: Dilemma
    followups: tuple[str, ...]  # asked in order, in the same conversation after the dilemma


def data_text(path: str | Path | None) -> str:
    """The text of `path`, or of the packaged follow-through set when None (its hash names an eval)."""
    if path is None:
        return resources.read_text(*PACKAGED)
    try:
        return Path(path).read_text(encoding=ENCODING)
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read --data {path}: {exc.__class__.__name__}: {exc}") from None


def parse_rows(text: str, source: str, *, followups: bool) -> list[FollowThroughDilemma]:
    """The dilemma rows of a JSONL text; `followups`: every row must carry a non-empty list of them."""
    out: list[FollowThroughDilemma] = []
    seen: set[str] = set()
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = loads_json(line)
        except json.JSONDecodeError as exc:
            raise UserError(f"{source}:{n}: not valid JSON ({exc.msg})") from None
        problem = row_problem(row)
        if problem is None and followups:
            asked = row.get("followups")
            if not isinstance(asked, list) or not asked or not all(isinstance(f, str) and f.strip() for f in asked):
                problem = "needs 'followups': a non-empty list of non-empty strings"
        if problem is None and row["id"].strip() in seen:
            problem = f"id {row['id'].strip()!r} appears twice"
        if problem is not None:
            raise UserError(f"{source}:{n}: {problem}")
        seen.add(row["id"].strip())
        asked = row.get("followups") if followups else None
        out.append(FollowThroughDilemma(to_dilemma(row), tuple(f.strip() for f in asked or ())))
    if not out:
        raise UserError(f"{source}: no dilemma rows")
    return out


def load_followthrough(path: str | Path | None = None) -> list[FollowThroughDilemma]:
    """The packaged follow-through set, or a user's file of dilemma rows with follow-ups."""
    source = str(path) if path is not None else "dilemmas/data/followthrough.jsonl"
    return parse_rows(data_text(path), source, followups=True)


def load_dilemma_file(path: str | Path) -> list[Dilemma]:
    """A user's file of dilemma rows (follow-ups, if any, are ignored)."""
    return [row.dilemma for row in parse_rows(data_text(path), str(path), followups=False)]
