"""The real thing: Qwen2.5-Coder-1.5B-Instruct behind the managed llama.cpp server, through the existing
OpenAI-compatible client -- plain and streamed replies, a timeout, single-slot queueing and llama.cpp's
interrupted streams. Skipped with a reason without the `llamacpp` extra (`make llamacpp`) or the model
(`dilemma models install qwen-coder-1.5b`), so CI stays green without them. Slow: it loads a 1.1 GB model."""

from __future__ import annotations

import asyncio

import pytest

from dilemmakit.errors import ModelCallError
from dilemmakit.llamacpp.catalog import get_model
from dilemmakit.llamacpp.install import installed_gguf
from dilemmakit.llamacpp.model import ManagedLlamaCppModel, build_managed, extra_installed, server_argv
from dilemmakit.llamacpp.server import ManagedServer
from dilemmakit.models.base import GenParams
from dilemmakit.models.openai_compat import OpenAICompatModel
from dilemmakit.models.spec import parse_spec

QWEN = get_model("qwen-coder-1.5b")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not extra_installed(), reason="the llamacpp extra is not installed (make llamacpp)"),
    pytest.mark.skipif(
        installed_gguf(QWEN) is None, reason="the model is not installed (dilemma models install qwen-coder-1.5b)"
    ),
]
SHORT = GenParams(temperature=0.0, max_tokens=12, seed=0)
ASK = [{"role": "user", "content": "Name one primary colour. Answer in one word."}]


@pytest.fixture(scope="module")
def qwen():
    model = build_managed(parse_spec("real-qwen?n_ctx=2048&threads=2"))
    yield model
    pid = model.server.pid
    asyncio.run(model.aclose())
    assert pid is not None and model.server.process is None


def client_for(model: ManagedLlamaCppModel, **options) -> OpenAICompatModel:
    return OpenAICompatModel(model=QWEN.name, base_url=model.server.base_url, api_key_env="", **options)


def test_the_gguf_carries_its_own_chat_template():
    from llama_cpp import Llama

    vocab = Llama(model_path=str(installed_gguf(QWEN)), vocab_only=True, verbose=False)  # metadata only: fast
    template = vocab.metadata["tokenizer.chat_template"]
    assert "<|im_start|>" in template  # Qwen's ChatML template, sent as --chat_format chat_template.default


def test_plain_and_streamed_replies(qwen):
    async def go():
        plain, streamer = client_for(qwen), client_for(qwen, stream=True)  # a client per event loop
        try:
            return await plain.generate(ASK, SHORT), await streamer.generate(ASK, SHORT)
        finally:
            await plain.aclose()
            await streamer.aclose()

    plain, streamed = asyncio.run(go())
    for reply in (plain, streamed):
        assert reply.text.strip() and reply.finish_reason in ("stop", "length") and reply.completion_tokens > 0
    assert plain.text.strip() == streamed.text.strip()  # greedy, the same seed: the same words either way


def test_a_silent_server_times_out_as_the_client_reports_it(qwen):
    long_prompt = [{"role": "user", "content": "Summarise: " + "the cat sat on the mat. " * 60}]

    async def go():
        impatient = client_for(qwen, timeout=0.2, max_retries=0, stream=True)
        try:
            await impatient.generate(long_prompt, GenParams(temperature=0.0, max_tokens=2))
        finally:
            await impatient.aclose()

    with pytest.raises(ModelCallError, match="no answer within 0.2 s"):
        asyncio.run(go())

    async def again():
        patient = client_for(qwen)
        try:
            return await patient.generate(ASK, SHORT)
        finally:
            await patient.aclose()

    assert asyncio.run(again()).text.strip()  # the server is still fine afterwards


def test_single_slot_queueing_answers_every_request(qwen):
    async def go():
        queued = client_for(qwen, concurrency=3)  # three at once: the server runs them one after another
        try:
            replies = await asyncio.gather(*(queued.generate(ASK, SHORT) for _ in range(3)))
        finally:
            await queued.aclose()
        return replies, queued.stats

    replies, stats = asyncio.run(go())
    assert all(r.text.strip() for r in replies) and stats.failures == 0 and not stats.retries


def test_an_interrupted_stream_is_retried_by_the_client():
    """llama.cpp's own default: a stream is cut (`[DONE]` without a finish_reason) when another request waits."""
    argv = server_argv(QWEN, installed_gguf(QWEN), threads=2, n_ctx=1024)
    argv[argv.index("--interrupt_requests") + 1] = "true"
    long = GenParams(temperature=0.0, max_tokens=48, seed=0)
    with ManagedServer(argv, name="llama.cpp server (interrupting)") as server:

        async def go():
            streamer = OpenAICompatModel(model=QWEN.name, base_url=server.base_url, api_key_env="", stream=True)
            plain = OpenAICompatModel(model=QWEN.name, base_url=server.base_url, api_key_env="")
            try:
                first = asyncio.create_task(streamer.generate([{"role": "user", "content": "Count to forty."}], long))
                await asyncio.sleep(1.5)  # the stream is under way
                second = await plain.generate(ASK, SHORT)
                return await first, second, streamer.stats
            finally:
                await streamer.aclose()
                await plain.aclose()

        first, second, stats = asyncio.run(go())
    assert first.text.strip() and second.text.strip()
    assert stats.retries.get("cut_stream", 0) >= 1 and stats.failures == 0
