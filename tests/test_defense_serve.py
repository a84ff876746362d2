"""`dilemma serve`'s app over a real socket, spoken to by a real HTTP client (httpx and the project's own client)."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest

from dilemmakit.models.base import GenParams
from tests.helpers import Served, patience, tiny_defended_chat


@pytest.fixture(scope="module")
def defended_tiny():
    """A tiny random Llama that speaks the embedded tokenizer, with an ERR defense installed."""
    chat = tiny_defended_chat()
    yield chat
    asyncio.run(chat.aclose())


def test_chat_completion_reports_gate_score(defended_tiny):
    with Served(defended_tiny) as base:
        r = httpx.post(
            f"{base}/chat/completions",
            json={
                "model": "tiny-defended",
                "max_tokens": 5,
                "temperature": 0,
                "messages": [{"role": "user", "content": "hello"}],
            },
            timeout=patience(60),
        )
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["object"] == "chat.completion"
        assert isinstance(body["choices"][0]["message"]["content"], str)
        assert 0.5 < body["x_gate_score"] <= 1.0
        assert float(r.headers["X-Dilemma-Gate"]) == pytest.approx(body["x_gate_score"], abs=1e-5)
        assert body["usage"]["completion_tokens"] <= 5
        models = httpx.get(f"{base}/models", timeout=patience(10)).json()
        assert [m["id"] for m in models["data"]] == ["tiny-defended"]


def test_streaming_sends_sse_chunks_and_done(defended_tiny):
    with Served(defended_tiny) as base:
        with httpx.stream(
            "POST",
            f"{base}/chat/completions",
            timeout=patience(60),
            json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 6, "temperature": 0, "stream": True},
        ) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            assert "X-Dilemma-Gate" in r.headers
            lines = [ln for ln in r.iter_lines() if ln.startswith("data: ")]
        assert lines[-1] == "data: [DONE]"
        chunks = [json.loads(ln[6:]) for ln in lines[:-1]]
        assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
        assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")
        assert chunks[-1]["x_gate_score"] is not None


def _stream_text(base: str, max_tokens: int) -> tuple[list[str], str]:
    body = {
        "messages": [{"role": "user", "content": "Tell me about rivers."}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": True,
    }
    with httpx.stream("POST", f"{base}/chat/completions", timeout=patience(60), json=body) as r:
        chunks = [json.loads(ln[6:]) for ln in r.iter_lines() if ln.startswith("data: {")]
    pieces = [c["choices"][0]["delta"].get("content", "") for c in chunks]
    return [p for p in pieces if p], chunks[-1]["choices"][0]["finish_reason"]


def test_local_models_stream_token_by_token_and_match_the_whole_reply(defended_tiny):
    with Served(defended_tiny) as base:
        pieces, finish = _stream_text(base, 12)
        whole = httpx.post(
            f"{base}/chat/completions",
            timeout=patience(60),
            json={
                "messages": [{"role": "user", "content": "Tell me about rivers."}],
                "max_tokens": 12,
                "temperature": 0,
            },
        ).json()
    assert "".join(pieces) == whole["choices"][0]["message"]["content"]
    assert finish == whole["choices"][0]["finish_reason"]
    assert len(pieces) >= 4  # several token-sized pieces, not one finished blob


def test_a_client_that_leaves_mid_stream_frees_its_row(defended_tiny):
    engine = defended_tiny.engine
    with Served(defended_tiny) as base:
        before = engine.stats.steps_run
        with httpx.stream(
            "POST",
            f"{base}/chat/completions",
            timeout=patience(60),
            json={
                "messages": [{"role": "user", "content": "hi"}],
                "max_tokens": 2000,
                "temperature": 0,
                "stream": True,
            },
        ) as r:
            for line in r.iter_lines():
                if '"content": "' in line and '"content": ""' not in line:
                    break  # got a token: hang up
        deadline = time.monotonic() + 20
        steps = engine.stats.steps_run
        while time.monotonic() < deadline:  # the engine goes idle instead of decoding 2000 tokens
            time.sleep(0.5)
            if engine.stats.steps_run == steps:
                break
            steps = engine.stats.steps_run
        assert engine.stats.steps_run == steps
        assert steps - before < 1000  # far fewer than the 2000 tokens asked for
        pieces, _ = _stream_text(base, 4)  # and keeps serving
        assert pieces


def test_models_that_cannot_stream_send_word_chunks():
    from dilemmakit.models.base import Reply

    class Fixed:
        name = "fixed"

        async def generate(self, messages, params):
            return Reply(text="one two three", meta={"gate_score": 0.25})

        async def aclose(self):
            pass

    with Served(Fixed()) as base:
        pieces, finish = _stream_text(base, 5)
    assert pieces == ["one", " two", " three"] and finish == "stop"


def test_bad_requests_get_openai_style_400(defended_tiny):
    with Served(defended_tiny) as base:
        r = httpx.post(f"{base}/chat/completions", content=b"{not json", timeout=patience(10))
        assert r.status_code == 400 and "error" in r.json()
        r = httpx.post(f"{base}/chat/completions", json={"messages": []}, timeout=patience(10))
        assert r.status_code == 400 and "messages" in r.json()["error"]["message"]
        r = httpx.post(
            f"{base}/chat/completions", json={"messages": [{"role": "robot", "content": "x"}]}, timeout=patience(10)
        )
        assert r.status_code == 400


def test_project_openai_client_can_attack_the_served_model(defended_tiny):
    from dilemmakit.loading import load_model

    async def ask(spec: str):
        client = load_model(spec)
        try:
            return await client.generate([{"role": "user", "content": "hello"}], GenParams(temperature=0, max_tokens=4))
        finally:
            await client.aclose()

    with Served(defended_tiny) as base:
        reply = asyncio.run(ask(f"openai:tiny-defended@{base}?max_retries=0"))
        streamed = asyncio.run(ask(f"openai:tiny-defended@{base}?max_retries=0&stream=1"))
    assert isinstance(reply.text, str)
    assert 0.5 < reply.meta["gate_score"] <= 1.0  # a red-team run records the gate per turn
    assert streamed.text == reply.text and streamed.meta["gate_score"] == reply.meta["gate_score"]


def test_a_campaign_against_the_served_model_stores_the_gate_score_per_turn(defended_tiny, tmp_path):
    from dilemmakit.campaign import CampaignConfig, run_campaign
    from dilemmakit.store.db import open_store

    with Served(defended_tiny) as base:
        config = CampaignConfig(
            target=f"openai:tiny-defended@{base}?max_retries=0",
            method="direct",
            behaviors="jbb",
            limit=2,
            judge="refusal",
            target_max_tokens=4,
        )
        store = open_store(tmp_path)
        try:
            asyncio.run(run_campaign(config, store, show_progress=False))
            turns = [t for c in store.conversations() for t in store.turns(c.id) if t.role == "assistant"]
        finally:
            store.close()
    assert len(turns) == 2
    assert all(0.5 < t.meta["gate_score"] <= 1.0 for t in turns)
