"""One loaded instance per model spec, shared by every role that names it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from dilemmakit.calls import CallStats
from dilemmakit.loading.backends import load_model
from dilemmakit.models.base import ChatModel
from dilemmakit.models.spec import ModelSpec, parse_spec


class ModelPool:
    def __init__(self, *, api_key_env: str = "OPENAI_API_KEY", concurrency: int = 16):
        self.api_key_env = api_key_env
        self.concurrency = concurrency
        self._models: dict[str, ChatModel] = {}

    def get(self, spec: ModelSpec | str) -> ChatModel:
        spec = parse_spec(spec) if isinstance(spec, str) else spec
        if spec.text not in self._models:
            self._models[spec.text] = load_model(spec, api_key_env=self.api_key_env, concurrency=self.concurrency)
        return self._models[spec.text]

    def put(self, spec: ModelSpec | str, model: ChatModel) -> None:
        """Share an already loaded model under its spec (evaluations that load weights once)."""
        self._models[(parse_spec(spec) if isinstance(spec, str) else spec).text] = model

    def call_stats(self) -> dict[str, CallStats]:
        """HTTP calls so far per model name (models that make none left out)."""
        out: dict[str, CallStats] = {}
        for model in self._models.values():
            stats = getattr(model, "stats", None)
            if isinstance(stats, CallStats):
                out[model.name] = out.get(model.name, CallStats()) + stats
        return out

    async def check_all(self) -> None:
        """Reach every HTTP endpoint once before any work starts (clear error if one is down)."""
        for model in self._models.values():
            check = getattr(model, "check", None)
            if check is not None:
                await check()

    async def aclose(self) -> None:
        for model in self._models.values():
            await model.aclose()
        self._models.clear()


@asynccontextmanager
async def pool_scope(pool: ModelPool | None = None, **options) -> AsyncIterator[ModelPool]:
    """`pool` when the caller shares one (its owner closes it), else a fresh `ModelPool(**options)` closed on exit."""
    if pool is not None:
        yield pool
        return
    own = ModelPool(**options)
    try:
        yield own
    finally:
        await own.aclose()
