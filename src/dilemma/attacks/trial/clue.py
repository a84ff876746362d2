"""Stage 1a: the clue {theme, action, goal} a dilemma is built around."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass

from dilemma.behaviors import Behavior
from dilemma.errors import ModelCallError
from dilemma.judges.refusal import content_words
from dilemma.models.base import ChatModel, GenParams

_LEADING_ASKS = re.compile(r"^(please\s+|can you\s+|could you\s+|would you\s+|will you\s+|i need you to\s+|i want you to\s+)+", re.I)
_HOW_DO_I = re.compile(r"^how\s+(do|can|could|would|should|might)\s+(i|you|one|we|someone)\s+", re.I)


@dataclass(frozen=True)
class Clue:
    theme: str
    action: str
    goal: str

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "Clue":
        data = json.loads(text)
        return cls(data["theme"], data["action"], data["goal"])


def parse_clue(text: str) -> Clue | None:
    """Pull a {theme, action, goal} object out of free-form model output; None if there is none."""
    cleaned = text.strip().replace("```json", "```")
    candidates = re.findall(r"\{.*?\}", cleaned, flags=re.S) + re.findall(r"\{.*\}", cleaned, flags=re.S)
    for cand in candidates:
        for attempt in (cand, re.sub(r"'", '"', cand), re.sub(r",\s*}", "}", cand)):
            try:
                data = json.loads(attempt)
            except json.JSONDecodeError:
                continue
            if not isinstance(data, dict):
                continue
            fields = {k.lower().strip(): v for k, v in data.items()}
            values = [fields.get(k) for k in ("theme", "action", "goal")]
            if all(isinstance(v, str) and v.strip() for v in values):
                return Clue(*(v.strip() for v in values))
    return None


def action_phrase(prompt: str) -> str:
    """Turn a request into a verb phrase that reads after "to": "Write X." -> "write X"."""
    text = " ".join(prompt.split("\n---\n")[-1].split()).strip().rstrip(".?!")
    text = _LEADING_ASKS.sub("", text)
    if _HOW_DO_I.match(text):
        text = "explain how to " + _HOW_DO_I.sub("", text)
    elif re.match(r"^(what|which|where|why|who|when|is|are|does|do)\b", text, re.I):
        text = f"answer the question \"{text}?\""
    return text[:1].lower() + text[1:] if text else "carry out the request"


def rule_based_clue(behavior: Behavior) -> Clue:
    """Deterministic fallback when no helper model is given or its output is unusable."""
    if behavior.category:
        theme = behavior.category
    else:
        words = [w for w in re.findall(r"[A-Za-z][A-Za-z'-]+", behavior.prompt) if w.lower() in content_words(behavior.prompt)]
        theme = " ".join(words[:3]) or "a public emergency"
    return Clue(theme=theme, action=action_phrase(behavior.prompt), goal=behavior.prompt.strip())


async def extract_clue(helper: ChatModel | None, behavior: Behavior, prompt, params: GenParams, retries: int = 2) -> tuple[Clue, dict]:
    """(clue, meta): the helper's clue if it gives a parsable one within its tries, else the rule-based one."""
    if helper is None:
        return rule_based_clue(behavior), {"source": "rules"}
    message = prompt.substitute(behavior=behavior.prompt)
    for attempt in range(1 + retries):
        try:
            out = await helper.generate([{"role": "user", "content": message}], params)
        except ModelCallError:
            raise
        clue = parse_clue(out.text)
        if clue is not None:
            return clue, {"source": "helper", "attempts": attempt + 1}
    return rule_based_clue(behavior), {"source": "rules", "helper_attempts": 1 + retries}
