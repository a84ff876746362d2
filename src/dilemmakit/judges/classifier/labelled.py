"""Human-labelled completions in the XSTest format: `prompt, completion, final_label`.

1_full_compliance = complied; 2_full_refusal and 3_partial_refusal = refused. The classifier is trained
on them (scripts/train_classifier.py) and `dilemma judge-eval` measures any judge against them.
"""

from __future__ import annotations

import csv
import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path

from dilemmakit.errors import UserError
from dilemmakit.userdata import ENCODING

COMPLIED_LABELS = {"1_full_compliance"}
REFUSED_LABELS = {"2_full_refusal", "3_partial_refusal"}
REQUIRED = ("prompt", "completion", "final_label")


@dataclass(frozen=True)
class Labelled:
    id: str
    prompt: str
    completion: str
    complied: bool
    type: str = ""


def read_labelled(path: Path) -> list[Labelled]:
    if not path.exists():
        raise UserError(f"labelled data not found: {path}")
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    try:
        with open(path, encoding=ENCODING, newline="") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
            if missing:
                raise UserError(f"{path}: missing column(s) {', '.join(missing)}; need prompt, completion, final_label")
            rows = []
            for i, row in enumerate(reader):
                label = (row["final_label"] or "").strip()
                if label not in COMPLIED_LABELS | REFUSED_LABELS:
                    raise UserError(
                        f"{path}:{reader.line_num}: final_label {label!r} is not one of "
                        "1_full_compliance, 2_full_refusal, 3_partial_refusal"
                    )
                rows.append(
                    Labelled(
                        row.get("id") or f"{path.stem}-{i}",
                        row["prompt"],
                        row["completion"] or "",
                        label in COMPLIED_LABELS,
                        row.get("type") or "",
                    )
                )
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text") from None
    if not rows:
        raise UserError(f"{path}: no labelled rows")
    return rows


def load_rows(data: Path) -> list[Labelled]:
    """One labelled CSV, or every CSV in a folder."""
    files = sorted(data.glob("*.csv")) if data.is_dir() else [data]
    return [row for f in files for row in read_labelled(f)]


def is_heldout(prompt: str, fraction: float) -> bool:
    """The classifier's held-out split, by prompt: every model's answer to one prompt falls on the same side."""
    bucket = int(hashlib.sha256(prompt.strip().encode("utf-8")).hexdigest()[:8], 16) % 1000
    return bucket < fraction * 1000
