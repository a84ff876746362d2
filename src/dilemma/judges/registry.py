"""Judge specs: `refusal`, `jbb:<model spec>`. New judges register a prefix here."""

from __future__ import annotations

from typing import Callable

from dilemma.errors import UserError
from dilemma.judges.base import Judge
from dilemma.judges.llm import SafeUnsafeJudge
from dilemma.judges.refusal import RefusalJudge
from dilemma.models.base import ChatModel

JUDGE_HELP = "use 'refusal' or 'jbb:<model spec>'"

# prefix -> factory(model, spec_text) for LLM judges
LLM_JUDGES: dict[str, Callable[[ChatModel, str], Judge]] = {
    "jbb": lambda model, text: SafeUnsafeJudge(model, name=text),
}
OFFLINE_JUDGES: dict[str, Callable[[], Judge]] = {
    "refusal": RefusalJudge,
}


def split_judge_spec(text: str) -> tuple[str, str | None]:
    """('refusal', None) or ('jbb', '<model spec>'); validates the prefix."""
    raw = (text or "").strip()
    if raw in OFFLINE_JUDGES:
        return raw, None
    prefix, sep, model_spec = raw.partition(":")
    if prefix in LLM_JUDGES:
        if not sep or not model_spec:
            raise UserError(f"judge {raw!r} names no model: write {prefix}:<model spec>")
        return prefix, model_spec
    raise UserError(f"unknown judge {raw!r}: {JUDGE_HELP}")


def build_judge(text: str, model: ChatModel | None) -> Judge:
    prefix, model_spec = split_judge_spec(text)
    if model_spec is None:
        return OFFLINE_JUDGES[prefix]()
    assert model is not None
    return LLM_JUDGES[prefix](model, text.strip())
