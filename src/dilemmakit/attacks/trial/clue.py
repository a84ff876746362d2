"""Stage 1a: the clue {theme, action, goal} a dilemma is built around."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from dilemmakit.attacks.text import action_phrase, copies_request, json_objects, theme_of
from dilemmakit.attacks.trial.abstract_action import abstract_theme
from dilemmakit.attacks.trial.prompts import PromptBook, prompt_book
from dilemmakit.behaviors import Behavior
from dilemmakit.models.base import ChatModel, GenParams


@dataclass(frozen=True)
class Clue:
    theme: str
    action: str
    goal: str
    domain: str = ""  # the abstract-action domain whose story fits the act; "" for a helper's own act

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Clue:
        data = json.loads(text)
        return cls(data["theme"], data["action"], data["goal"], data.get("domain", ""))


def parse_clue(text: str) -> Clue | None:
    """Pull a {theme, action, goal} object out of free-form model output; None if there is none."""
    for data in json_objects(text.strip().replace("```json", "```"), lenient=True):
        fields = {k.lower().strip(): v for k, v in data.items()}
        texts = [v.strip() for v in (fields.get(k) for k in ("theme", "action", "goal")) if isinstance(v, str)]
        if len(texts) == 3 and all(texts):
            return Clue(*texts)
    return None


def abstract_clue(behavior: Behavior, book: PromptBook | None = None) -> Clue:
    """The offline clue: the abstract act of the behavior's domain, never the request's own words
    (the goal keeps the request, for the follow-ups). Used without a helper model or when its output
    is unusable."""
    domain = (book or prompt_book()).actions.domain_for(behavior)
    return Clue(abstract_theme(behavior, domain), domain.action, behavior.prompt.strip(), domain.key)


def embedded_clue(behavior: Behavior) -> Clue:
    """The request itself as the act (the paper's D_TRIAL-H: the harmful prompt inside the dilemma)."""
    return Clue(theme=theme_of(behavior), action=action_phrase(behavior.prompt), goal=behavior.prompt.strip())


async def extract_clue(
    helper: ChatModel | None, behavior: Behavior, book: PromptBook, params: GenParams, retries: int = 2
) -> tuple[Clue, dict]:
    """(clue, meta): the helper's clue if it gives a parsable one whose action does not copy the request
    within its tries, else the abstract clue with `helper_failed` in its meta (a model-call failure is
    an error, not a helper failure)."""
    if helper is None:
        return abstract_clue(behavior, book), {"source": "rules"}
    message = book.clue.substitute(behavior=behavior.prompt)
    last, copied = "", False
    for attempt in range(1 + retries):
        out = await helper.generate([{"role": "user", "content": message}], params)
        last = out.text
        clue = parse_clue(out.text)
        copied = clue is not None and copies_request(clue.action, behavior.prompt)
        if clue is not None and not copied:
            return clue, {"source": "helper", "attempts": attempt + 1}
    extra = {"helper_problem": "copies the request"} if copied else {}
    return abstract_clue(behavior, book), helper_failure(1 + retries, last, source="rules", **extra)


def helper_failure(attempts: int, last_output: str, **meta) -> dict:
    """The meta of a helper step that got no usable output: counted by `summary` and the report."""
    return {**meta, "helper_failed": True, "helper_attempts": attempts, "helper_output": last_output[:300]}
