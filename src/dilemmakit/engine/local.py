"""Local transformers chat models. Pending requests from many conversations are batched together."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

from dilemmakit.engine.batching import BatchingEngine
from dilemmakit.engine.decoder import RowState, context_length
from dilemmakit.engine.prefix_cache import PREFIX_CACHE_MB
from dilemmakit.models.base import Delta, GenParams, Message, Reply, Sampling


class LocalHFModel:
    """A ChatModel over local transformers weights; concurrent calls share batched generation.

    `row_state` carries per-row state the weights keep (a harm gate's score); `dilemmakit.loading` wires it, and
    hands the defense it installed as `defense` (a `dilemmakit.defense.Defense`, for callers that measure it; the
    engine itself reads only `row_state`).
    `sampling` (the spec's options) fills what a request leaves unset; the engine's defaults fill the rest.
    `prefix_cache_mb` bounds the keys/values of finished replies kept for the conversations' next turns (0: off)."""

    def __init__(
        self,
        model,
        tokenizer,
        *,
        name: str,
        max_batch: int = 32,
        row_state: RowState | None = None,
        defense: Any = None,
        sampling: Sampling | None = None,
        prefix_cache_mb: int = PREFIX_CACHE_MB,
    ):
        self.name = name
        self.sampling = sampling or Sampling()
        self.model = model
        self.tokenizer = tokenizer
        self.defense = defense
        self.engine = BatchingEngine(
            model, tokenizer, max_batch=max_batch, row_state=row_state, prefix_cache_mb=prefix_cache_mb
        )

    async def generate(self, messages: list[Message], params: GenParams) -> Reply:
        return await self.engine.submit(messages, params.over(self.sampling))

    def stream(self, messages: list[Message], params: GenParams) -> AsyncGenerator[Delta, None]:
        return self.engine.stream(messages, params.over(self.sampling))

    @property
    def context_length(self) -> int:
        """Tokens the model attends over, prompt and reply together (the engine cuts a longer prompt's start)."""
        return context_length(self.model)

    def prompt_tokens(self, messages: list[Message]) -> int:
        return len(self.engine.prompt_ids(messages))

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    async def aclose(self) -> None:
        self.engine.close()
