"""Text rules every attack shares: reading model output, quoting the target, framing a request offline."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

from dilemmakit.behaviors import Behavior
from dilemmakit.judges import opens_with_refusal
from dilemmakit.judges.refusal import content_words

_LEADING_ASKS = re.compile(
    r"^(please\s+|can you\s+|could you\s+|would you\s+|will you\s+|i need you to\s+|i want you to\s+)+", re.I
)
_HOW_DO_I = re.compile(r"^how\s+(do|can|could|would|should|might)\s+(i|you|one|we|someone)\s+", re.I)


def json_objects(text: str, *, lenient: bool = False) -> Iterator[dict]:
    """The JSON objects embedded in free-form model output, outermost first.

    lenient: first every shortest {...} span, then the outermost one, each also tried with single quotes
    made double and with a trailing comma dropped (what small helper models write)."""
    candidates = re.findall(r"\{.*\}", text, flags=re.S)
    if lenient:
        candidates = re.findall(r"\{.*?\}", text, flags=re.S) + candidates
    for candidate in candidates:
        attempts = [candidate]
        if lenient:
            attempts += [candidate.replace("'", '"'), re.sub(r",\s*}", "}", candidate)]
        for attempt in attempts:
            try:
                data = json.loads(attempt)
            except json.JSONDecodeError:
                continue
            if isinstance(data, dict):
                yield data


def clean_attacker_output(text: str) -> str:
    """An attacker model's message without the "Here is the question:" wrapping or enclosing quotes."""
    text = text.strip()
    text = re.sub(r"^(here is|here's)[^:\n]*:\s*", "", text, flags=re.I)
    text = re.sub(r"^(follow-up question|question|message|next message)\s*:\s*", "", text, flags=re.I)
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1].strip()
    return text


def quote_from(answer: str, max_chars: int = 200) -> str:
    """A sentence worth quoting back: the longest one, trimmed."""
    body = re.sub(r"^\s*option [ab][\s:.\-]*", "", answer.strip(), flags=re.I)
    sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+", body) if len(s.strip()) > 10]
    best = max(sentences, key=len) if sentences else body.strip()
    best = best.replace('"', "'")
    return best if len(best) <= max_chars else best[: max_chars - 3].rsplit(" ", 1)[0] + "..."


def refused(reply: str) -> bool:
    """The target gave nothing to build on: an empty reply or one that opens with a refusal.

    Stricter than the `refusal` judge's phrase match: an in-character "Option A. I cannot let them die.
    Here is ..." is an answer to build on, not a refusal (TRIAL's follow-up case, Crescendo/Actor backtracking)."""
    return not reply.strip() or opens_with_refusal(reply)


def action_phrase(prompt: str) -> str:
    """Turn a request into a verb phrase that reads after "to": "Write X." -> "write X"."""
    text = " ".join(prompt.split("\n---\n")[-1].split()).strip().rstrip(".?!")
    text = _LEADING_ASKS.sub("", text)
    if _HOW_DO_I.match(text):
        text = "explain how to " + _HOW_DO_I.sub("", text)
    elif re.match(r"^(what|which|where|why|who|when|is|are|does|do)\b", text, re.I):
        text = f'answer the question "{text}?"'
    return text[:1].lower() + text[1:] if text else "carry out the request"


def theme_of(behavior: Behavior) -> str:
    """What a request is about, without a model: its category, else its first content words."""
    if behavior.category:
        return behavior.category
    words = [
        w for w in re.findall(r"[A-Za-z][A-Za-z'-]+", behavior.prompt) if w.lower() in content_words(behavior.prompt)
    ]
    return " ".join(words[:3]) or "a public emergency"


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower().replace("\u2019", "'").replace("'", ""))


def copies_request(text: str, request: str, n: int = 6) -> bool:
    """Whether `text` repeats `n` consecutive words of `request` (case and punctuation ignored)."""
    asked = _words(request)
    if len(asked) < n:
        return False
    said = " " + " ".join(_words(text)) + " "
    return any(" " + " ".join(asked[i : i + n]) + " " in said for i in range(len(asked) - n + 1))


_INSTRUCTION_WORDS = frozenset(
    (
        *("write", "create", "provide", "give", "explain", "describe", "develop", "design", "draft"),
        *("generate", "list", "make", "tell", "show", "detailed", "detail", "step", "steps"),
        *("instructions", "guide", "tutorial", "someone", "something", "way", "ways", "how"),
    )
)


def key_terms(prompt: str, limit: int = 6) -> str:
    """A request's subject in a few of its own words, not its sentence: "defamatory, article, president and heroin"."""
    text = prompt.split("\n---\n")[-1]
    kept = content_words(text) - _INSTRUCTION_WORDS
    terms: list[str] = []
    for word in re.findall(r"[A-Za-z][A-Za-z'-]+", text):
        if word.lower() in kept and word.lower() not in (t.lower() for t in terms):
            terms.append(word)
    terms = terms[:limit]
    if len(terms) < 2:
        return "".join(terms) or "the details"
    return ", ".join(terms[:-1]) + " and " + terms[-1]
