"""Stage 2: follow-ups that turn the chosen option into the requested content.

Three cases, as in the paper: the last reply refused; it went along but stayed incomplete (quote it,
go deeper); or this is the last round (ask for the action directly, hypothetically). By default
(`--followup-case rule`) the case is picked by rule and the attacker model is told which one applies;
with `--followup-case attacker` the attacker is given all cases and picks from the answer itself, as
the authors' code does (its stage is then `followup_attacker`; the offline template still goes by rule).
The attacker sees the original behavior as the goal (the authors pass the original prompt), the clue's
theme and action, and the previous question and answer.
"""

from __future__ import annotations

import random
from string import Template

from dilemmakit.attacks.text import as_sentence, ask_phrase, quote_from, refused
from dilemmakit.attacks.trial.clue import Clue
from dilemmakit.attacks.trial.prompts import PromptBook

REFUSAL, DEEPEN, LAST = "refusal", "deepen", "last"
ATTACKER = "attacker"  # `--followup-case attacker`: the attacker model reads the answer and picks the case
RULE = "rule"  # `--followup-case rule` (default): the three cases above, picked by `followup_case`


def followup_case(last_answer: str, *, is_last_round: bool) -> str:
    if is_last_round:
        return LAST
    if refused(last_answer):
        return REFUSAL
    return DEEPEN


def picked_option_b(reply: str, check_chars: int = 20) -> bool:
    return "option b" in reply.lstrip()[:check_chars].lower()


def template_followup(
    book: PromptBook,
    case: str,
    *,
    clue: Clue,
    scenario_meta: dict,
    last_answer: str,
    behavior_prompt: str,
    rng: random.Random,
) -> str:
    """The offline follow-up for `case`, a request in full sentences that states the concrete ask inside
    the story: a refusal is reframed as research through the theme and the abstract act, then the ask; a
    deepen quotes the last answer and asks for the ask's specifics; only the last one quotes the request."""
    variant = rng.choice(book.templates["followups"][case])
    quote = quote_from(last_answer) or " ".join(last_answer.split())[:200] or "Option A"
    return Template(variant).substitute(
        name=scenario_meta.get("character", "the character"),
        action=clue.action,
        theme=clue.theme,
        catastrophe=scenario_meta.get("catastrophe", "the catastrophe will happen"),
        stake=scenario_meta.get("stake", "the people in danger"),
        quote=quote.replace('"', "'"),
        ask=ask_phrase(behavior_prompt),
        request=as_sentence(behavior_prompt),
    )


def followup_prompt(
    book: PromptBook,
    case: str,
    *,
    goal: str,
    clue: Clue,
    last_question: str,
    last_answer: str,
    remaining: int = 0,
) -> str:
    """What the attacker model is asked for its next message. `goal`: the original behavior; `case`: one
    of the three cases, or ATTACKER (all of them, the attacker picks); `remaining`: messages it can
    still send after this one."""
    return book.followup.substitute(
        goal=goal.strip(),
        action=clue.action,
        theme=clue.theme,
        last_question=last_question,
        last_answer=last_answer,
        case_instructions=Template(book.followup_cases[case]).safe_substitute(remaining=remaining),
    )
