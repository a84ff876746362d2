"""The ChatModel a `real-qwen` / `llamacpp:<name>` spec builds: a managed llama.cpp server for the installed
model, talked to through the OpenAI-compatible client (streams, timeouts and retries are the client's).

The server is llama-cpp-python's (`python -m llama_cpp.server`, the `llamacpp` extra), started with the
model's own chat template from the GGUF's metadata (`--chat_format chat_template.default`). It answers one
request at a time; a request that arrives meanwhile waits its turn instead of interrupting the one
running (`--interrupt_requests false`), and the client sends one at a time by default (`concurrency=1`),
so a timeout measures the server's silence, not a queue.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

from dilemmakit.errors import UserError
from dilemmakit.llamacpp.catalog import CatalogModel
from dilemmakit.llamacpp.server import ManagedServer
from dilemmakit.models.base import GenParams, Message, Reply
from dilemmakit.models.openai_compat import DEFAULT_TIMEOUT_S, OpenAICompatModel
from dilemmakit.models.spec import ModelSpec

NO_EXTRA = (
    "the llama.cpp engine is not installed: run `make llamacpp` (builds llama-cpp-python[server] from source "
    "into this environment, ~10-25 min on 2 cores)"
)
DEFAULT_START_TIMEOUT_S = 180.0


def extra_installed() -> bool:
    return importlib.util.find_spec("llama_cpp") is not None


def require_extra() -> None:
    if not extra_installed():
        raise UserError(NO_EXTRA)


def server_argv(model: CatalogModel, gguf: Path, *, threads: int, n_ctx: int) -> list[str]:
    """The llama-cpp-python server command (`{port}` is filled in at start)."""
    return [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(gguf),
        "--model_alias",
        model.name,
        "--host",
        "127.0.0.1",
        "--port",
        "{port}",
        "--chat_format",
        model.chat_format,
        "--n_ctx",
        str(n_ctx),
        "--n_threads",
        str(threads),
        "--n_threads_batch",
        str(threads),
        "--logits_all",
        "false",  # per-token logits over a 150k vocabulary: memory and prefill time nobody reads
        "--interrupt_requests",
        "false",
    ]


def default_threads() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


class ManagedLlamaCppModel:
    """A ChatModel that owns its server: `aclose()` (or exit, SIGTERM, Ctrl-C) stops it."""

    def __init__(self, server: ManagedServer, client: OpenAICompatModel):
        self.server = server
        self.client = client
        self.name = client.name

    @property
    def stats(self):
        return self.client.stats

    async def check(self) -> None:
        await self.client.check()

    async def generate(self, messages: list[Message], params: GenParams) -> Reply:
        return await self.client.generate(messages, params)

    async def aclose(self) -> None:
        await self.client.aclose()
        self.server.stop()


def build_managed(spec: ModelSpec) -> ManagedLlamaCppModel:
    """Start the server for a `llamacpp` spec (blocking until it answers) and return its ChatModel."""
    from dilemmakit.llamacpp.catalog import get_model
    from dilemmakit.llamacpp.install import require_installed

    model = get_model(spec.model)
    gguf = require_installed(model)
    require_extra()
    threads = spec.int_option("threads", default_threads())
    n_ctx = spec.int_option("n_ctx", model.n_ctx)
    start_timeout = spec.float_option("start_timeout", DEFAULT_START_TIMEOUT_S)
    if threads < 1 or n_ctx < 256 or start_timeout <= 0:
        raise UserError(
            f"model spec {str(spec)!r}: threads must be 1 or more, n_ctx 256 or more, start_timeout above 0"
        )
    server = ManagedServer(
        server_argv(model, gguf, threads=threads, n_ctx=n_ctx),
        name=f"llama.cpp server for {model.name}",
        start_timeout=start_timeout,
    )
    base_url = server.start()
    client = OpenAICompatModel(
        model=model.name,
        base_url=base_url,
        api_key_env="",
        concurrency=spec.int_option("concurrency", 1),
        timeout=spec.float_option("timeout", DEFAULT_TIMEOUT_S),
        max_retries=spec.int_option("max_retries", 5),
        name=spec.identity,
        stream=spec.options.get("stream", "0").lower() in ("1", "true", "yes"),
        sampling=spec.effective_sampling,
    )
    return ManagedLlamaCppModel(server, client)
