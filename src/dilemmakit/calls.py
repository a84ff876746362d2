"""What HTTP models have done: calls, failed calls and retries by cause, one record that adds and subtracts.

A client counts into it (`models.openai_compat`), the model pool sums its models', a campaign takes the
difference of two snapshots as its own calls, and the store adds that to the run's, all as `CallStats`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class CallStats:
    """Calls, failed calls and retries by cause (timeout, 429, 5xx, cut_stream, connection, malformed, http)."""

    calls: int = 0
    failures: int = 0  # calls that gave up after their retries
    retries: dict[str, int] = field(default_factory=dict)

    def count_retry(self, cause: str) -> None:
        self.retries[cause] = self.retries.get(cause, 0) + 1

    @property
    def total_retries(self) -> int:
        return sum(self.retries.values())

    def __add__(self, other: CallStats) -> CallStats:
        causes = self.retries.keys() | other.retries.keys()
        retries = {c: self.retries.get(c, 0) + other.retries.get(c, 0) for c in sorted(causes)}
        return CallStats(self.calls + other.calls, self.failures + other.failures, retries)

    def __sub__(self, earlier: CallStats) -> CallStats:
        """What was done since `earlier`, a snapshot of the same counts (causes that did not grow left out)."""
        retries = {c: n - earlier.retries.get(c, 0) for c, n in self.retries.items()}
        return CallStats(
            self.calls - earlier.calls, self.failures - earlier.failures, {c: n for c, n in retries.items() if n}
        )

    def as_dict(self) -> dict[str, Any]:
        return {"calls": self.calls, "failures": self.failures, "retries": dict(self.retries)}
