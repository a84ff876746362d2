"""Stage 2: follow-ups that turn the chosen option into the requested content.

Three cases, as in the paper: the last reply refused; it went along but stayed incomplete (quote it,
go deeper); or this is the last round (ask for the action directly, hypothetically).
"""

from __future__ import annotations

import random
import re
from string import Template

from dilemma.attacks.trial.clue import Clue
from dilemma.attacks.trial.prompts import PromptBook
from dilemma.judges.refusal import is_refusal

REFUSAL, DEEPEN, LAST = "refusal", "deepen", "last"


def followup_case(last_answer: str, *, is_last_round: bool) -> str:
    if is_last_round:
        return LAST
    if not last_answer.strip() or is_refusal(last_answer):
        return REFUSAL
    return DEEPEN


def picked_option_b(reply: str, check_chars: int = 20) -> bool:
    return "option b" in reply.lstrip()[:check_chars].lower()


def quote_from(answer: str, max_chars: int = 200) -> str:
    """A sentence worth quoting back: the longest one, trimmed."""
    body = re.sub(r"^\s*option [ab][\s:.\-]*", "", answer.strip(), flags=re.I)
    sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+", body) if len(s.strip()) > 10]
    best = max(sentences, key=len) if sentences else body.strip()
    best = best.replace('"', "'")
    return best if len(best) <= max_chars else best[: max_chars - 3].rsplit(" ", 1)[0] + "..."


def clean_attacker_output(text: str) -> str:
    text = text.strip()
    text = re.sub(r"^(here is|here's)[^:\n]*:\s*", "", text, flags=re.I)
    text = re.sub(r"^(follow-up question|question|message|next message)\s*:\s*", "", text, flags=re.I)
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1].strip()
    return text


def template_followup(book: PromptBook, case: str, *, clue: Clue, scenario_meta: dict, last_answer: str,
                      behavior_prompt: str, rng: random.Random) -> str:
    name = scenario_meta.get("character", "the character")
    catastrophe = scenario_meta.get("catastrophe", "the catastrophe will happen")
    variant = rng.choice(book.templates["followups"][case])
    return Template(variant).substitute(
        name=name, action=clue.action, catastrophe=catastrophe, quote=quote_from(last_answer),
        request=behavior_prompt.strip(),
    )


def followup_prompt(book: PromptBook, case: str, *, clue: Clue, last_question: str, last_answer: str) -> str:
    """What the attacker model is asked for its next message."""
    return book.followup.substitute(
        goal=clue.goal, action=clue.action, theme=clue.theme, last_question=last_question,
        last_answer=last_answer, case_instructions=book.followup_cases[case],
    )
