"""Any OpenAI-compatible chat endpoint (vLLM, llama.cpp server, Ollama, hosted APIs).

Async HTTP with a per-endpoint concurrency limit and bounded retries with backoff on 429, 5xx,
timeouts, dropped connections and malformed bodies. The API key is read from an environment
variable and never appears in logs, errors, the run database or exports.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
from contextlib import contextmanager
from typing import Any

import httpx

from dilemma.errors import ModelCallError, UserError
from dilemma.models.base import GenParams, Message, Reply

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
# One semaphore per (event loop, base URL): every model spec on the same server shares the limit.
_ENDPOINT_LIMITS: dict[tuple[int, str], asyncio.Semaphore] = {}


class _Transient(Exception):
    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


@contextmanager
def _transport_errors(cut: str):
    """Map httpx transport failures to retryable errors (`cut` names a dropped connection)."""
    try:
        yield
    except httpx.TimeoutException as exc:
        raise _Transient(f"timeout ({type(exc).__name__})") from None
    except httpx.ConnectError:
        raise _Transient("connection refused or dropped") from None
    except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
        raise _Transient(f"{cut} ({type(exc).__name__})") from None


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return min(60.0, max(0.0, float(value))) if value is not None else None
    except ValueError:
        return None


class OpenAICompatModel:
    def __init__(self, *, model: str, base_url: str, api_key_env: str = "OPENAI_API_KEY", concurrency: int = 16,
                 timeout: float = 120.0, max_retries: int = 5, backoff_base: float = 0.5, backoff_max: float = 20.0,
                 name: str | None = None, stream: bool = False):
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.name = name or f"openai:{model}@{base_url}"
        self.api_key_env = api_key_env
        self.concurrency = max(1, concurrency)
        self.timeout = timeout
        self.max_retries = max(0, max_retries)
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.stream = stream  # server-sent events; a stream cut before its end is retried like any transient fault
        self._client: httpx.AsyncClient | None = None
        self.retries_done = 0

    # --- plumbing -----------------------------------------------------------------------------
    def _headers(self) -> dict[str, str]:
        key = os.environ.get(self.api_key_env, "") if self.api_key_env else ""
        return {"Authorization": f"Bearer {key}"} if key else {}

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
            # Loading the CA bundle costs ~0.25 s of CPU per client; plain-http endpoints never use it.
            verify = self.base_url.startswith("https://")
            self._client = httpx.AsyncClient(timeout=self.timeout, limits=limits, headers=self._headers(), verify=verify)
        return self._client

    def _limit(self) -> asyncio.Semaphore:
        key = (id(asyncio.get_running_loop()), self.base_url)
        if key not in _ENDPOINT_LIMITS:
            _ENDPOINT_LIMITS[key] = asyncio.Semaphore(self.concurrency)
        return _ENDPOINT_LIMITS[key]

    def _user_error_for(self, response: httpx.Response) -> UserError | None:
        if response.status_code in (401, 403):
            return UserError(f"{self.base_url} rejected the API key (HTTP {response.status_code}): "
                             f"set a valid key in ${self.api_key_env} (or pass --api-key-env)")
        if response.status_code == 404:
            return UserError(f"{self.base_url}: model {self.model!r} or the chat endpoint was not found (HTTP 404); "
                             "check the model name and that the base URL ends in /v1")
        return None

    # --- API ----------------------------------------------------------------------------------
    async def check(self) -> None:
        """Fail fast with a clear message if the endpoint is unreachable or the key is wrong."""
        try:
            response = await self._http().get(f"{self.base_url}/models")
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.ReadTimeout) as exc:
            raise UserError(f"cannot reach {self.base_url} ({type(exc).__name__}): is the server running and the URL right?") from None
        except httpx.HTTPError as exc:
            raise UserError(f"cannot talk to {self.base_url}: {type(exc).__name__}") from None
        if response.status_code in (401, 403):
            raise self._user_error_for(response)

    async def generate(self, messages: list[Message], params: GenParams) -> Reply:
        body: dict[str, Any] = {
            "model": self.model, "messages": list(messages), "temperature": params.temperature,
            "max_tokens": params.max_tokens, "top_p": params.top_p,
        }
        if params.seed is not None:
            body["seed"] = params.seed
        if self.stream:
            body["stream"] = True
        last_error = ""
        for attempt in range(self.max_retries + 1):
            try:
                async with self._limit():
                    return await (self._post_stream(body) if self.stream else self._post(body))
            except _Transient as exc:
                last_error = str(exc)
                if attempt == self.max_retries:
                    break
                self.retries_done += 1
                delay = exc.retry_after if exc.retry_after is not None else min(
                    self.backoff_max, self.backoff_base * 2 ** attempt) * (0.5 + random.random())
                await asyncio.sleep(delay)
        raise ModelCallError(f"{self.name}: gave up after {self.max_retries + 1} attempts ({last_error})")

    async def _post(self, body: dict[str, Any]) -> Reply:
        with _transport_errors("connection error"):
            response = await self._http().post(f"{self.base_url}/chat/completions", json=body)
        if response.status_code in RETRY_STATUS:
            raise _Transient(f"HTTP {response.status_code}", _retry_after(response))
        error = self._user_error_for(response)
        if error is not None:
            raise error
        if response.status_code >= 400:
            raise ModelCallError(f"{self.name}: HTTP {response.status_code}: {response.text[:200]}")
        try:
            data = response.json()
            choice = data["choices"][0]
            text = choice["message"].get("content") or ""
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            raise _Transient("malformed response body") from None
        usage = data.get("usage") or {}
        return Reply(text=text, finish_reason=choice.get("finish_reason") or "stop",
                     prompt_tokens=int(usage.get("prompt_tokens") or 0),
                     completion_tokens=int(usage.get("completion_tokens") or 0),
                     meta={k[2:]: v for k, v in data.items() if k.startswith("x_")})

    async def _post_stream(self, body: dict[str, Any]) -> Reply:
        pieces: list[str] = []
        extra: dict[str, Any] = {}  # x_ fields a server adds, prefix dropped (`dilemma serve`: x_gate_score -> gate_score)
        finish, done = None, False
        with _transport_errors("stream cut"):
            async with self._http().stream("POST", f"{self.base_url}/chat/completions", json=body) as response:
                if response.status_code in RETRY_STATUS:
                    raise _Transient(f"HTTP {response.status_code}", _retry_after(response))
                if response.status_code >= 400:
                    await response.aread()
                    error = self._user_error_for(response)
                    if error is not None:
                        raise error
                    raise ModelCallError(f"{self.name}: HTTP {response.status_code}: {response.text[:200]}")
                async for line in response.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    payload = line[len("data:"):].strip()
                    if payload == "[DONE]":
                        done = True
                        break
                    try:
                        chunk = json.loads(payload)
                        extra.update({k[2:]: v for k, v in chunk.items() if k.startswith("x_") and v is not None})
                        choices = chunk["choices"]
                        if not choices:  # e.g. a final usage-only chunk
                            continue
                        delta = choices[0].get("delta") or {}
                        pieces.append(delta.get("content") or "")
                        finish = choices[0].get("finish_reason") or finish
                    except (ValueError, KeyError, TypeError, AttributeError, IndexError):
                        raise _Transient("malformed stream chunk") from None
        if not done and finish is None:
            raise _Transient("truncated stream (no finish_reason or [DONE])")
        return Reply(text="".join(pieces), finish_reason=finish or "stop", meta=extra)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
