"""Redaction: completions a judge found harmful are not shown by default, only their length.

A reply counts as harmful when any judge gave it a `success` verdict (the attack got what it asked
for). The placeholder keeps the transcript readable without republishing the content.
"""

from __future__ import annotations

from dilemmakit.models.secrets import redact
from dilemmakit.verdict import Verdict


def harmful_turns(verdicts: list[Verdict], broken_turn: int | None) -> set[int]:
    """Turn indices whose content must be redacted."""
    idx = {v.turn_idx for v in verdicts if v.label == "success" and v.turn_idx is not None}
    if broken_turn is not None:
        idx.add(broken_turn)
    return idx


def _chunks(text: str, size: int = 40, step: int = 20) -> set[str]:
    words = " ".join(text.split())
    return {
        words[i : i + size] for i in range(0, max(1, len(words) - size + 1), step) if len(words[i : i + size]) == size
    }


def quotes_any(text: str, harmful: list[str]) -> bool:
    """Does `text` quote a harmful reply (a later turn or a judge's reasoning echoing it)? Any quote
    of 60+ characters contains one of the overlapping 40-character chunks."""
    if not harmful or not text:
        return False
    flat = " ".join(text.split())
    return any(chunk in flat for h in harmful for chunk in _chunks(h))


def placeholder(content: str) -> str:
    return f"[redacted: {len(content)} characters judged harmful; rerun `dilemma report --unredacted` to show]"


def quote_placeholder(content: str) -> str:
    return f"[redacted: {len(content)} characters that quote a reply judged harmful]"


def scrub_url_credentials(text: str) -> str:
    """`https://user:secret@host` -> `https://***@host`, `?api_key=sk-..` -> `?api_key=***`: runs stored before
    identities dropped secrets may still carry them (`dilemmakit.models.secrets.redact`)."""
    return redact(text)
