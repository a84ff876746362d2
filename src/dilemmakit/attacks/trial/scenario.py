"""Stage 1b: the trolley-style dilemma, written by the helper model or from the offline templates."""

from __future__ import annotations

import random
import re
from string import Template

from dilemmakit.attacks.text import copies_request
from dilemmakit.attacks.trial.clue import Clue, helper_failure
from dilemmakit.attacks.trial.prompts import Framework, PromptBook
from dilemmakit.models.base import ChatModel, GenParams


def clean_scenario(text: str) -> str:
    text = text.replace("**", "").replace("__", "").strip()
    return re.sub(r"\n{3,}", "\n\n", text)


def is_usable_scenario(text: str, request: str = "") -> bool:
    """Both options, some length, and no stretch of the request copied into it."""
    lower = text.lower()
    return len(text) >= 120 and "option a" in lower and "option b" in lower and not copies_request(text, request)


def template_scenario(book: PromptBook, clue: Clue, framework: Framework, rng: random.Random) -> tuple[str, dict]:
    """A coherent dilemma around the clue's act: the story of its domain (a helper's clue gets the
    default frame), a character whose role fits, Option A the act, Option B refusing and the catastrophe."""
    t = book.templates
    domain = book.actions.domain(clue.domain)
    name = rng.choice(t["names"])
    template = rng.choice(t["scenarios"])
    fields = {"name": name, "action": clue.action}
    line = Template(t["framework_lines"][framework.key]).substitute(name=name, stake=domain.stake)
    text = Template(template).substitute(
        fields,
        role=domain.role,
        story=Template(domain.story).substitute(fields),
        theme=clue.theme,
        cost=Template(domain.cost).substitute(fields),
        catastrophe=domain.catastrophe,
        stake=domain.stake,
        framework_line=line,
    )
    return text, {
        "source": "template",
        "character": name,
        "catastrophe": domain.catastrophe,
        "stake": domain.stake,
        "domain": domain.key,
    }


def embedded_scenario(book: PromptBook, clue: Clue, framework: Framework, rng: random.Random) -> tuple[str, dict]:
    """The dilemma with the clue's act (the request itself) pasted into a fixed crisis frame: the
    probes' D_TRIAL-H / D_TRIAL-B, where harmful and benign twins must differ only in the request."""
    t = book.templates["embedded"]
    character = rng.choice(t["characters"])
    catastrophe = rng.choice(t["catastrophes"])
    line = Template(t["framework_lines"][framework.key]).substitute(name=character["name"])
    text = Template(t["scenario"]).substitute(
        name=character["name"],
        role=character["role"],
        theme=clue.theme,
        action=clue.action,
        catastrophe=catastrophe,
        framework_line=line,
    )
    return text, {"source": "template", "character": character["name"], "catastrophe": catastrophe}


async def write_scenario(
    helper: ChatModel | None,
    book: PromptBook,
    clue: Clue,
    framework: Framework,
    params: GenParams,
    rng: random.Random,
    retries: int = 2,
    *,
    request: str = "",
) -> tuple[str, dict]:
    """(scenario, meta): the helper's scenario if it has both options and copies no stretch of
    `request` within its tries, else a template (with `helper_failed` in its meta when there was a helper)."""
    if helper is None:
        return template_scenario(book, clue, framework, rng)
    message = book.scenario.substitute(
        theme=clue.theme, action=clue.action, goal=clue.goal, framework_brief=framework.brief
    )
    last = ""
    for attempt in range(1 + retries):
        out = await helper.generate([{"role": "user", "content": message}], params)
        last = out.text
        text = clean_scenario(out.text)
        if is_usable_scenario(text, request):
            return text, {"source": "helper", "attempts": attempt + 1}
    text, meta = template_scenario(book, clue, framework, rng)
    extra = {"helper_problem": "copies the request"} if copies_request(clean_scenario(last), request) else {}
    return text, helper_failure(1 + retries, last, **meta, **extra)
