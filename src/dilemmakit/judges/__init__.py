"""Judges: decide per reply whether an attack succeeded. Registry by spec prefix."""

from dilemmakit.judges.base import ERROR, FAIL, SUCCESS, Judge, Verdict
from dilemmakit.judges.refusal import ComplianceJudge, RefusalJudge, is_refusal, opens_with_refusal

__all__ = [
    "ERROR",
    "FAIL",
    "SUCCESS",
    "Judge",
    "Verdict",
    "ComplianceJudge",
    "RefusalJudge",
    "is_refusal",
    "opens_with_refusal",
]
