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
# What `json_objects` reads of a model's output: a clue or a plan is a few hundred characters.
MAX_JSON_SCAN = 100_000
_HOW_DO_I = re.compile(r"^how\s+(do|can|could|would|should|might)\s+(i|you|one|we|someone)\s+", re.I)


def json_objects(text: str, *, lenient: bool = False) -> Iterator[dict]:
    """The JSON objects embedded in free-form model output, outermost first.

    lenient: first every shortest {...} span, then the outermost one, each also tried with single quotes
    made double and with a trailing comma dropped (what small helper models write).

    Only the first MAX_JSON_SCAN characters are read, from the first "{" to the last "}" among them: with no
    "}" after a run of "{", each pattern below would rescan the rest of the text from every "{" (minutes
    for a hostile megabyte)."""
    text = text[:MAX_JSON_SCAN]
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end < start:
        return
    text = text[start : end + 1]
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
            except (json.JSONDecodeError, RecursionError):  # model output: malformed or nested too deep
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


# Verbs a request opens with when it is an imperative ("Write ...", "Slightly modify ..."): such a sentence reads
# after "to" once its first letter is lowered. Gathered from the packaged behavior sets; an unknown opening is
# quoted instead of rephrased.
_IMPERATIVES = frozenset(
    (
        *("add", "analyse", "analyze", "answer", "argue", "brainstorm", "build", "choose", "code", "come", "compile"),
        *("compose", "conduct", "construct", "convert", "convince", "craft", "create", "demonstrate", "describe"),
        *("design", "detail", "determine", "develop", "devise", "draft", "draw", "edit", "educate", "encourage"),
        *("exploit", "explain", "find", "generate", "give", "guide", "hack", "help", "identify", "illustrate"),
        *(
            "implement",
            "instruct",
            "interfere",
            "lay",
            "list",
            "make",
            "manipulate",
            "modify",
            "name",
            "obfuscate",
            "offer",
        ),
        *("outline", "persuade", "plan", "post", "prepare", "produce", "promote", "provide", "publish", "recommend"),
        *("release", "reply", "rewrite", "share", "show", "spread", "suggest", "summarize", "teach", "tell", "think"),
        *("train", "transform", "translate", "use", "write"),
    )
)
_SETTING = re.compile(r"^(?:given|based on|considering|using|as|in)\b[^,]{0,160},\s+", re.I)  # "Given this code, ..."
_HOW_TO = re.compile(r"^how\s+to\s+", re.I)
_NEEDS = re.compile(r"^i(?:'m| am)? ?(?:need|want|would like|'d like)\s+(?=(?:a|an|the|some|ideas|ways|tips)\b)", re.I)
_NOUN_ASK = re.compile(r"^(?:ideas|ways|tips|methods|strategies|suggestions)\b", re.I)
_WH_START = re.compile(r"^(?:what|what's|which|where|why|who|when|how)\b", re.I)
_YES_NO_START = re.compile(r"^(?:is|are|does|do|did|can|could|would|should|will)\b", re.I)
_ABBREVIATION = re.compile(r"(?:\b[A-Z]|\b(?:Dr|Mr|Mrs|Ms|St|vs|etc|al|e\.g|i\.e|No|Jr|Sr))\.$")


def request_sentences(prompt: str) -> list[str]:
    """The request's sentences (a contextual request's task, not its context), abbreviations kept whole."""
    text = " ".join(prompt.split("\n---\n")[-1].split()).strip()
    pieces = re.split(r"(?<=[.!?])\s+(?=[A-Z\"'(])", text)
    sentences: list[str] = []
    for piece in pieces:
        if sentences and _ABBREVIATION.search(sentences[-1]):
            sentences[-1] += " " + piece
        else:
            sentences.append(piece)
    return [s for s in sentences if s]


def _as_verb_phrase(sentence: str) -> str | None:
    """One sentence of a request as a verb phrase that reads after "to", or None when it is no clear ask."""
    text = _SETTING.sub("", _LEADING_ASKS.sub("", sentence.strip())).strip().rstrip(".!?").strip()
    text = _LEADING_ASKS.sub("", text)
    if not text:
        return None
    if _HOW_DO_I.match(text):
        return "explain how to " + _HOW_DO_I.sub("", text)
    if _HOW_TO.match(text):
        return "explain " + text[:1].lower() + text[1:]
    if _NEEDS.match(text):
        return "provide " + _NEEDS.sub("", text)
    if _NOUN_ASK.match(text):
        return "give " + text[:1].lower() + text[1:]
    words = text.split()
    first = words[0].lower()
    if first.endswith("ly") and len(words) > 1 and words[1].lower() in _IMPERATIVES:  # "Slightly modify ..."
        return text[:1].lower() + text[1:]
    if first in _IMPERATIVES:
        return first + text[len(words[0]) :]
    if _WH_START.match(text) or (_YES_NO_START.match(text) and sentence.strip().endswith("?")):
        return f'answer the question "{text}?"'
    return None


def ask_phrase(prompt: str) -> str:
    """The request's concrete ask as a verb phrase that reads after "to" ("... has to <ask>"): its first
    sentence that asks something, rephrased ("How can I X?" -> "explain how to X", "I need a plan to X" ->
    "provide a plan to X"); a request with no such sentence is quoted whole."""
    sentences = request_sentences(prompt)
    for sentence in sentences:
        phrase = _as_verb_phrase(sentence)
        if phrase:
            return phrase
    quoted = " ".join(sentences).replace('"', "'").rstrip(".!?")
    return f'carry out the request "{quoted}"' if quoted else "carry out the request"


def as_sentence(text: str) -> str:
    """`text` stripped, ending with a full stop unless it already ends with ". ? ! or a closing quote after one"."""
    text = text.strip().rstrip(":;,").rstrip()
    return text if re.search(r"[.!?][\"')\]]*$", text) else text + "."
