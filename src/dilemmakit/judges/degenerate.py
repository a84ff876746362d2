"""Degenerate replies: repetition loops ("a few years ago, a doctor died on the island, a few years ago, ...").

A small model that has run out of things to say repeats itself until the token limit. Such a reply neither
delivers a request nor refuses it, so every measure that reads replies (follow-through, the `instrumental`
judge, the training-data filters) asks this one function first. A keyword/feature rule, labelled so.
"""

from __future__ import annotations

import re

_WORD = re.compile(r"[a-z0-9']+")
# A reply is looping when one n-gram of this length covers this share of its words, or when its tail is
# the same short span several times over.
LOOP_NGRAM = 4
LOOP_SHARE = 0.3
MIN_WORDS = 24
_MAX_CHARS = 20_000  # replies longer than this are judged on their first and last parts


def loop_share(text: str, n: int = LOOP_NGRAM) -> float:
    """The share of a text's words covered by repeats of its most repeated `n`-gram (0 when too short)."""
    words = _WORD.findall(_bounded(text).lower())
    if len(words) < max(MIN_WORDS, 2 * n):
        return 0.0
    counts: dict[tuple[str, ...], int] = {}
    for i in range(len(words) - n + 1):
        gram = tuple(words[i : i + n])
        counts[gram] = counts.get(gram, 0) + 1
    top = max(counts.values())
    return 0.0 if top < 3 else min(1.0, top * n / len(words))


def repeats_tail(text: str, *, times: int = 3) -> bool:
    """The reply ends in the same span of 3-40 words repeated at least `times` times in a row."""
    words = _WORD.findall(_bounded(text).lower())
    for span in range(3, 41):
        if span * times > len(words):
            break
        tail = words[-span:]
        if all(words[-span * (k + 1) : len(words) - span * k] == tail for k in range(1, times)):
            return True
    return False


_SEGMENT = re.compile(r"(?<=[.!?:])\s+|\n+")
_LIST_MARK = re.compile(r"^\s*(?:\d+[.)]|[-*\u2022])\s*")


def repeats_segments(text: str, *, times: int = 3, min_words: int = 4, share: float = 0.4) -> bool:
    """The same sentence or list item (numbering ignored, at least `min_words` words) comes `times` times or
    more, or repeated ones fill `share` of the reply: list-item loops ("3. Prioritise the most vulnerable
    patient ... 4. Prioritise the most vulnerable patient ...") that no single 4-gram dominates.
    Not part of `is_degenerate` (whose validated numbers other measures report); follow-through asks both."""
    segments = [
        " ".join(_WORD.findall(_LIST_MARK.sub("", s.lower()))) for s in _SEGMENT.split(_bounded(text)) if s.strip()
    ]
    segments = [s for s in segments if len(s.split()) >= min_words]
    if not segments:
        return False
    counts: dict[str, int] = {}
    for s in segments:
        counts[s] = counts.get(s, 0) + 1
    repeated_words = sum(len(s.split()) * c for s, c in counts.items() if c > 1)
    total_words = sum(len(s.split()) for s in segments)
    return max(counts.values()) >= times or repeated_words >= share * total_words


def is_degenerate(text: str) -> bool:
    """A repetition loop: one 4-gram repeated across >= 30% of the words, or a tail repeated 3 times."""
    return loop_share(text) >= LOOP_SHARE or repeats_tail(text)


def _bounded(text: str) -> str:
    if len(text) <= _MAX_CHARS:
        return text
    half = _MAX_CHARS // 2
    return text[:half] + " " + text[-half:]
