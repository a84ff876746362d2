"""`dilemma serve` exposed: API key on every route, body and JSON-depth limits, no upstream URLs in what
clients see, dropped streams that stop, and start-up refusals (non-loopback without a key, port in use).

The served model proxies the scripted server (no weights to load); clients are the real `openai` SDK and
raw sockets where the SDK would not send what an attacker sends.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time

import httpx
import pytest

from dilemmakit.loading import load_model
from dilemmakit.serve.guard import MAX_JSON_DEPTH
from tests.cli_inprocess import run_inprocess
from tests.helpers import Served, free_port

openai = pytest.importorskip("openai", reason="the openai SDK is in the test extra: pip install -e '.[test]'")

HELLO = [{"role": "user", "content": "Tell me about rivers."}]
KEY = "sk-dilemma-test-0123456789"


@pytest.fixture
def proxied(server):
    server.script("target", lambda m: "Rivers flow to the sea.")
    return load_model(server.spec("target", max_retries=0))


def _client(url: str, key: str = KEY):
    return openai.OpenAI(base_url=url, api_key=key, max_retries=0, timeout=30)


def test_the_api_key_guards_every_route(proxied):
    with Served(proxied, served_name="target", api_key=KEY) as url:
        with _client(url) as client:
            reply = client.chat.completions.create(model="target", messages=HELLO)
            assert reply.choices[0].message.content == "Rivers flow to the sea."
            assert [m.id for m in client.models.list()] == ["target"]
        with _client(url, "sk-wrong") as client:
            with pytest.raises(openai.AuthenticationError) as exc:
                client.chat.completions.create(model="target", messages=HELLO)
            assert exc.value.code == "invalid_api_key"
            with pytest.raises(openai.AuthenticationError):
                client.models.list()
            with pytest.raises(openai.AuthenticationError):
                client.models.retrieve("target")
        for headers in ({}, {"Authorization": "Bearer"}, {"Authorization": f"Basic {KEY}"}):
            for method, path in [("GET", "/models"), ("POST", "/chat/completions"), ("GET", "/../secret")]:
                response = httpx.request(method, url + path, headers=headers, json={"messages": HELLO})
                assert response.status_code == 401, (headers, path)
                error = response.json()["error"]
                assert set(error) == {"message", "type", "param", "code"} and KEY not in response.text


def test_request_bodies_are_capped(proxied):
    with Served(proxied, served_name="target", max_body_bytes=64 * 1024) as url, _client(url) as client:
        big = [{"role": "user", "content": "x" * 100_000}]
        with pytest.raises(openai.APIStatusError) as exc:
            client.chat.completions.create(model="target", messages=big)
        assert exc.value.status_code == 413 and "limit" in exc.value.message
        assert exc.value.body["type"] == "invalid_request_error"

        def chunks():  # no Content-Length: the server counts as the body arrives
            yield b'{"messages": [{"role": "user", "content": "'
            for _ in range(100):
                yield b"y" * 1024
            yield b'"}]}'

        response = httpx.post(url + "/chat/completions", content=chunks(), headers={"Content-Type": "application/json"})
        assert response.status_code == 413 and response.json()["error"]["message"]
        assert client.chat.completions.create(model="target", messages=HELLO).choices[0].message.content


def test_deep_json_is_a_400_not_a_recursion_error(proxied):
    with Served(proxied, served_name="target") as url:
        for body in [
            "[" * 100_000 + "]" * 100_000,
            json.dumps({"messages": HELLO, "extra": _nested(MAX_JSON_DEPTH + 5)}),
        ]:
            response = httpx.post(url + "/chat/completions", content=body, headers={"Content-Type": "application/json"})
            assert response.status_code == 400, response.text
            assert f"deeper than {MAX_JSON_DEPTH}" in response.json()["error"]["message"]
        ok = httpx.post(url + "/chat/completions", json={"messages": HELLO, "extra": _nested(MAX_JSON_DEPTH - 5)})
        assert ok.status_code == 200


def _nested(depth: int) -> list:
    value: list = []
    for _ in range(depth - 1):
        value = [value]
    return value


def test_clients_see_model_ids_never_upstream_urls(server, proxied):
    server.fail("target", 500, 500)
    with Served(proxied, served_name=None) as url, _client(url) as client:
        assert [m.id for m in client.models.list()] == ["target"]
        assert client.models.retrieve("target").id == "target"
        with pytest.raises(openai.InternalServerError) as exc:
            client.chat.completions.create(model="target", messages=HELLO)
        assert "target" in exc.value.message
        with pytest.raises(openai.APIError) as streamed:
            list(client.chat.completions.create(model="target", messages=HELLO, stream=True))
        missing = httpx.get(url + "/models/other").text
    host = server.base_url.split("//")[1].split("/")[0]
    for text in (exc.value.message, json.dumps(exc.value.body), str(streamed.value), missing):
        assert host not in text and "http://" not in text and "openai:" not in text, text


def test_a_dropped_stream_stops_without_a_log_flood(server, caplog):
    server.script("long", lambda m: " ".join(["word"] * 20_000))
    proxied = load_model(server.spec("long", max_retries=0))
    with caplog.at_level(logging.WARNING, logger="asyncio"), Served(proxied, served_name="long") as url:
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        body = json.dumps({"model": "long", "messages": HELLO, "stream": True}).encode()
        with socket.create_connection(("127.0.0.1", port)) as conn:
            head = f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            conn.sendall(head.encode() + body)
            assert conn.recv(100).startswith(b"HTTP/1.1 200")
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # reset
        time.sleep(2)  # the server would be writing its 20,000 chunks now
        with _client(url) as client:  # and still serves
            assert client.chat.completions.create(model="long", messages=HELLO, max_tokens=5).choices
    flood = [r for r in caplog.records if "socket.send() raised exception" in r.getMessage()]
    assert len(flood) < 5, f"{len(flood)} 'socket.send() raised exception' warnings"


def test_a_non_loopback_host_needs_a_key_and_a_used_port_is_exit_2(capsys):
    code, out, err = run_inprocess(capsys, "serve", "--model", "openai:m@http://127.0.0.1:9/v1", "--host", "0.0.0.0")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--api-key" in err and "--no-auth" in err, err
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, out, err = run_inprocess(capsys, "serve", "--model", "openai:m@http://127.0.0.1:9/v1", "--port", port)
    assert code == 2 and len(err.strip().splitlines()) == 1 and f"cannot listen on 127.0.0.1:{port}" in err, err


def test_the_cli_takes_the_key_from_the_environment_and_never_prints_it(server, proxied, tmp_path):
    port = free_port()
    log = tmp_path / "serve.log"
    env = {**os.environ, "DILEMMA_SERVE_API_KEY": KEY}
    with log.open("w") as fh:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dilemmakit.cli.main",
                "serve",
                "--model",
                server.spec("target"),
                "--port",
                str(port),
            ],
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        url = f"http://127.0.0.1:{port}/v1"
        deadline = time.monotonic() + 120
        while True:
            try:
                status = httpx.get(url + "/models").status_code
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
        assert status == 401
        with _client(url) as client:
            assert [m.id for m in client.models.list()] == ["target"]
            assert client.chat.completions.create(model="target", messages=HELLO).choices[0].message.content
        with _client(url, "sk-wrong") as client, pytest.raises(openai.AuthenticationError):
            client.models.list()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    text = log.read_text()
    assert "requests need `Authorization: Bearer" in text and KEY not in text
