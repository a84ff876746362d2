"""Keys/values of finished replies, kept so that a conversation's next turn prefills only its new messages.

A finished row's keys/values (prompt and reply) stay in a `PrefixCache` for a while: the next turn of that
conversation starts with them (what llama.cpp's server and vLLM's prefix caching do). Results agree with a
whole prefill to float rounding.
"""

from __future__ import annotations

from collections import OrderedDict

import torch

PREFIX_MIN_TOKENS = 32  # a shorter cached start is not worth a prefill of its own
PREFIX_CACHE_MB = 512  # default size of the finished rows' keys/values kept for later prompts

KV = list[tuple[torch.Tensor, torch.Tensor]]  # per layer: keys, values [kv_heads, tokens, head_dim]


def common_prefix(a: tuple[int, ...] | list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


class PrefixCache:
    """Keys/values of finished rows (their prompt and reply tokens), kept for later prompts that start with
    them. At most `budget_bytes`; the least recently used entry goes first, and an entry that a newer one
    extends (the same conversation one turn later) is dropped when the newer one arrives."""

    def __init__(self, budget_bytes: int):
        self.budget_bytes = budget_bytes
        self.entries: OrderedDict[tuple[int, ...], KV] = OrderedDict()
        self.bytes = 0

    @staticmethod
    def size(kv: KV) -> int:
        return sum(k.numel() * k.element_size() + v.numel() * v.element_size() for k, v in kv)

    def store(self, ids: tuple[int, ...], kv: KV) -> None:
        size = self.size(kv)
        if len(ids) < PREFIX_MIN_TOKENS or size > self.budget_bytes:
            return
        for old in [k for k in self.entries if len(k) <= len(ids) and ids[: len(k)] == k]:
            self._drop(old)
        self.entries[ids] = kv
        self.bytes += size
        while self.bytes > self.budget_bytes:
            self._drop(next(iter(self.entries)))

    def longest(self, prompt: list[int]) -> tuple[int, KV] | None:
        """(n, keys/values) of the entry sharing the longest start with `prompt`, n < len(prompt) tokens
        (the prompt's last token always runs: it gives the first reply token); None below PREFIX_MIN_TOKENS."""
        best, best_ids = 0, None
        for ids in self.entries:
            n = min(common_prefix(ids, prompt), len(prompt) - 1)
            if n > best:
                best, best_ids = n, ids
        if best_ids is None or best < PREFIX_MIN_TOKENS:
            return None
        self.entries.move_to_end(best_ids)
        return best, self.entries[best_ids]

    def _drop(self, ids: tuple[int, ...]) -> None:
        self.bytes -= self.size(self.entries.pop(ids))

    def clear(self) -> None:
        self.entries.clear()
        self.bytes = 0
