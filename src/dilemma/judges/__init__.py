"""Judges: decide per reply whether an attack succeeded. Registry by spec prefix."""

from dilemma.judges.base import ERROR, FAIL, SUCCESS, Judge, Verdict
from dilemma.judges.refusal import RefusalJudge, is_refusal

__all__ = ["ERROR", "FAIL", "SUCCESS", "Judge", "Verdict", "RefusalJudge", "is_refusal"]
