"""`dilemma serve` spoken to by the real `openai` SDK: each OpenAI convention a client relies on.

The served model is a tiny random Llama with an ERR defense (a 2048-token context window), run by the real
engine over a real socket; the HTTP-model cases proxy the scripted server.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest

from dilemmakit.loading import load_model
from tests.helpers import Served, patience, tiny_defended_chat

openai = pytest.importorskip("openai", reason="the openai SDK is in the test extra: pip install -e '.[test]'")

HELLO = [{"role": "user", "content": "Tell me about rivers."}]


@pytest.fixture(scope="module")
def tiny():
    chat = tiny_defended_chat()
    yield chat
    asyncio.run(chat.aclose())


@pytest.fixture(scope="module")
def base(tiny):
    with Served(tiny, aliases=("embedded-err-alias",)) as url:
        yield url


@pytest.fixture
def client(base):
    with openai.OpenAI(base_url=base, api_key="unused", max_retries=0, timeout=patience(60)) as c:
        yield c


def _ask(client, **kw):
    return client.chat.completions.create(**{"model": "tiny-defended", "messages": HELLO, "temperature": 0, **kw})


def _stream(client, **kw) -> tuple[dict[int, str], dict[int, str], list]:
    """Text and finish_reason per choice index, and the raw chunks."""
    texts: dict[int, str] = {}
    finish: dict[int, str] = {}
    chunks = list(_ask(client, stream=True, **kw))
    for chunk in chunks:
        for choice in chunk.choices:
            texts[choice.index] = texts.get(choice.index, "") + (choice.delta.content or "")
            if choice.finish_reason:
                finish[choice.index] = choice.finish_reason
    return texts, finish, chunks


def test_the_gate_score_is_visible_through_the_sdk(client):
    raw = client.chat.completions.with_raw_response.create(
        model="tiny-defended", messages=HELLO, temperature=0, max_tokens=4
    )
    completion = raw.parse()
    gate = completion.model_extra["x_gate_score"]
    assert 0.5 < gate <= 1.0
    assert float(raw.headers["X-Dilemma-Gate"]) == pytest.approx(gate, abs=1e-5)
    assert completion.usage.completion_tokens <= 4 and completion.usage.prompt_tokens > 0
    _, finish, chunks = _stream(client, max_tokens=4)
    last = [c for c in chunks if c.choices and c.choices[0].finish_reason][-1]
    assert last.model_extra["x_gate_score"] == pytest.approx(gate, abs=1e-6)


def test_bad_values_are_400s_naming_the_field(client):
    for kw, param in [
        ({"max_tokens": 0}, "max_tokens"),
        ({"temperature": 2.5}, "temperature"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"n": 0}, "n"),
    ]:
        with pytest.raises(openai.BadRequestError) as exc:
            _ask(client, **kw)
        assert exc.value.param == param and exc.value.status_code == 400
    reply = client.chat.completions.create(
        model="tiny-defended",
        messages=[{"role": "developer", "content": "Be brief."}, *HELLO],
        temperature=0,
        max_tokens=3,
    )
    assert reply.choices[0].finish_reason in ("stop", "length")


def test_a_request_that_does_not_fit_the_context_is_a_400_with_the_numbers(client, tiny):
    with pytest.raises(openai.BadRequestError) as exc:
        _ask(client, max_tokens=1_000_000)
    prompt = tiny.prompt_tokens(HELLO)
    assert exc.value.code == "context_length_exceeded" and exc.value.param == "max_tokens"
    assert "2048" in exc.value.message and f"{prompt} in the messages" in exc.value.message
    assert "1000000 in the completion" in exc.value.message

    long = [{"role": "user", "content": "river " * 3000}]
    with pytest.raises(openai.BadRequestError) as exc:
        client.chat.completions.create(model="tiny-defended", messages=long, max_tokens=5)
    assert exc.value.code == "context_length_exceeded" and exc.value.param == "messages"

    # without max_tokens a prompt near the limit gets the room that is left, its start intact
    words = 1
    while tiny.prompt_tokens([{"role": "user", "content": "river " * (words + 50)}]) < 2048 - 8:
        words += 50
    near = [{"role": "user", "content": "river " * words}]
    room = 2048 - tiny.prompt_tokens(near)
    reply = client.chat.completions.create(model="tiny-defended", messages=near, temperature=0)
    assert 8 <= room <= 58 and reply.usage.completion_tokens <= room
    assert reply.usage.prompt_tokens == tiny.prompt_tokens(near)  # nothing was cut from the prompt


def _a_stop_in(text: str) -> str:
    """Four characters from the middle of `text` that first occur well after its start."""
    for start in range(len(text) // 2, len(text) - 4):
        candidate = text[start : start + 4]
        if candidate.strip() and text.find(candidate) >= 5:
            return candidate
    raise AssertionError(f"no usable stop sequence in {text!r}")


def test_stop_sequences_end_the_reply_before_them_and_free_the_row(client, tiny):
    whole = _ask(client, max_tokens=40).choices[0].message.content
    stop = _a_stop_in(whole)
    expected = whole[: whole.find(stop)]

    reply = _ask(client, max_tokens=40, stop=["\u2603never", stop])
    assert reply.choices[0].message.content == expected
    assert reply.choices[0].finish_reason == "stop"

    before = tiny.engine.stats.steps_run
    texts, finish, _ = _stream(client, max_tokens=1500, stop=stop)
    assert texts[0] == expected and finish[0] == "stop"
    assert stop not in texts[0]
    assert tiny.engine.stats.steps_run - before < 200  # the row left the batch; 1500 tokens were allowed


def test_n_choices_streamed_and_not(client):
    reply = _ask(client, n=3, temperature=1.0, seed=7, max_tokens=8)
    assert [c.index for c in reply.choices] == [0, 1, 2]
    assert len({c.message.content for c in reply.choices}) > 1  # choice i samples with seed + i
    assert reply.usage.completion_tokens <= 24
    texts, finish, _ = _stream(client, n=2, temperature=1.0, seed=7, max_tokens=8)
    assert set(texts) == {0, 1} and set(finish) == {0, 1}
    assert [texts[0], texts[1]] == [c.message.content for c in reply.choices[:2]]


def test_usage_chunk_when_asked(client):
    texts, finish, chunks = _stream(client, max_tokens=6, stream_options={"include_usage": True})
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert 0 < chunks[-1].usage.completion_tokens <= 6 and chunks[-1].usage.prompt_tokens > 0
    assert all(c.usage is None for c in chunks[:-1])
    _, _, plain = _stream(client, max_tokens=6)
    assert all(c.choices for c in plain)  # no usage chunk unless asked


def test_models_by_id_unknown_models_and_routes(client, base):
    assert [m.id for m in client.models.list()] == ["tiny-defended"]
    assert client.models.retrieve("tiny-defended").id == "tiny-defended"
    with pytest.raises(openai.NotFoundError) as exc:
        client.models.retrieve("gpt-4o")
    assert exc.value.code == "model_not_found"
    with pytest.raises(openai.NotFoundError) as exc:
        _ask(client, model="gpt-4o", max_tokens=2)
    assert exc.value.code == "model_not_found" and "tiny-defended" in exc.value.message
    assert _ask(client, model="embedded-err-alias", max_tokens=2).model == "tiny-defended"

    missing = httpx.post(f"{base}/completions", json={"prompt": "x"}, timeout=patience(10))
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "invalid_request_error"
    wrong = httpx.get(f"{base}/chat/completions", timeout=patience(10))
    assert wrong.status_code == 405 and "POST" in wrong.headers["allow"]
    assert "Method not allowed" in wrong.json()["error"]["message"]


def test_sixteen_concurrent_sdk_streams(base, tiny):
    async def one(client, i: int) -> tuple[str, str | None]:
        stream = await client.chat.completions.create(
            model="tiny-defended",
            messages=[{"role": "user", "content": f"Question {i}: what is a river?"}],
            max_tokens=8,
            temperature=0,
            stream=True,
        )
        text, finish = "", None
        async for chunk in stream:
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
                finish = chunk.choices[0].finish_reason or finish
        return text, finish

    async def main():
        async with openai.AsyncOpenAI(base_url=base, api_key="unused", max_retries=0, timeout=patience(120)) as client:
            return await asyncio.gather(*(one(client, i) for i in range(16)))

    results = asyncio.run(main())
    assert len(results) == 16 and all(finish in ("stop", "length") for _, finish in results)
    assert all(text for text, finish in results if finish == "length")
    assert tiny.engine.largest_batch >= 2  # the streams shared decode steps


def test_stop_reaches_http_models_and_is_enforced_when_they_ignore_it(server):
    server.script("target", lambda m: "alpha beta STOP gamma delta")
    proxied = load_model(server.spec("target", max_retries=0))  # its connections live on the server's loop
    with Served(proxied, served_name="target") as url:
        with openai.OpenAI(base_url=url, api_key="unused", max_retries=0, timeout=patience(30)) as client:
            reply = client.chat.completions.create(model="target", messages=HELLO, stop="STOP")
            chunks = list(client.chat.completions.create(model="target", messages=HELLO, stop=["STOP"], stream=True))
    assert [c["stop"] for c in server.calls("target")] == [["STOP"], ["STOP"]]  # the upstream is told
    assert reply.choices[0].message.content == "alpha beta " and reply.choices[0].finish_reason == "stop"
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == "alpha beta " and chunks[-1].choices[0].finish_reason == "stop"


@pytest.mark.parametrize("split", [1, 2, 3, 100])
def test_stop_scanner_holds_back_a_possible_stop_across_pieces(split):
    from dilemmakit.serve.app import _StopScanner

    text = "one <en two <end> three"
    scanner = _StopScanner(("<end>", "zz"))
    sent = [scanner.feed(text[i : i + split]) for i in range(0, len(text), split)]
    assert "".join(sent) == "one <en two " == scanner.text and scanner.stopped
    assert all("<end" not in piece for piece in sent)
