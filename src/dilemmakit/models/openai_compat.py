"""Any OpenAI-compatible chat endpoint (vLLM, llama.cpp server, Ollama, hosted APIs).

Async HTTP with a per-endpoint concurrency limit and bounded retries with backoff on 429, 5xx,
timeouts, dropped connections, cut streams and malformed bodies; `model.stats` counts the retries by
cause. The API key is read from an environment variable and never appears in logs, errors, the run
database or exports.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
from contextlib import contextmanager
from typing import Any

import httpx

from dilemmakit.calls import CallStats
from dilemmakit.errors import ModelCallError, UserError
from dilemmakit.models.base import GenParams, Message, Reply, Sampling
from dilemmakit.models.secrets import redact, split_userinfo

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
# The read timeout is the longest silence we accept. A single-slot server (llama.cpp) answers queued
# requests one after another, so a request can wait several whole generations before its first byte;
# timing it out only re-sends it to a server that is still going to generate it.
DEFAULT_TIMEOUT_S = 600.0
CONNECT_TIMEOUT_S = 30.0  # a server that is up accepts at once, even when busy
# One semaphore per (event loop, base URL): every model spec on the same server shares the limit.
_ENDPOINT_LIMITS: dict[tuple[int, str], asyncio.Semaphore] = {}


class _Transient(Exception):
    def __init__(self, message: str, cause: str, retry_after: float | None = None):
        super().__init__(message)
        self.cause = cause
        self.retry_after = retry_after


def _status_error(response: httpx.Response) -> _Transient:
    code = response.status_code
    cause = "429" if code == 429 else "5xx" if code >= 500 else "http"
    return _Transient(f"HTTP {code}", cause, _retry_after(response))


@contextmanager
def _transport_errors(timeout: float, *, streaming: bool):
    """Map httpx transport failures to retryable errors; a connection lost mid-stream is a cut stream."""
    try:
        yield
    except httpx.TimeoutException as exc:
        raise _Transient(
            f"no answer within {timeout:g} s ({type(exc).__name__}); for long generations or a "
            "busy server raise it with ?timeout=SECONDS on the model spec",
            "timeout",
        ) from None
    except httpx.ConnectError:
        raise _Transient("connection refused or dropped", "connection") from None
    except (httpx.RemoteProtocolError, httpx.NetworkError) as exc:  # e.g. "incomplete chunked read"
        if streaming:
            raise _Transient(f"stream cut by the connection ({type(exc).__name__})", "cut_stream") from None
        raise _Transient(f"connection error ({type(exc).__name__})", "connection") from None


def _sampling_fields(sampling: Sampling) -> dict[str, Any]:
    """The sampling settings that are set, as request fields: top_p is OpenAI's; top_k, min_p and
    repetition_penalty are vLLM's, and llama.cpp reads top_k, min_p and repeat_penalty (servers ignore
    fields they do not know; a hosted API may reject them, so nothing is sent unless the spec sets it)."""
    fields: dict[str, Any] = sampling.as_dict()
    if "repetition_penalty" in fields:
        fields["repeat_penalty"] = fields["repetition_penalty"]
    return fields


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return min(60.0, max(0.0, float(value))) if value is not None else None
    except ValueError:
        return None


class OpenAICompatModel:
    def __init__(
        self,
        *,
        model: str,
        base_url: str,
        api_key_env: str = "OPENAI_API_KEY",
        concurrency: int = 16,
        timeout: float = DEFAULT_TIMEOUT_S,
        max_retries: int = 5,
        backoff_base: float = 0.5,
        backoff_max: float = 20.0,
        name: str | None = None,
        stream: bool = False,
        sampling: Sampling | None = None,
        api_key: str | None = None,
    ):
        self.model = model
        # The URL's user-info becomes Basic auth: the URL kept here (and printed in errors) carries no secret.
        url, self._basic_auth = split_userinfo(base_url.rstrip("/"))
        self.base_url = url
        self.name = redact(name or f"openai:{model}@{url}")
        try:
            httpx.URL(self.base_url)  # parse_spec checks the URL; this is the parser requests will use
        except httpx.InvalidURL as exc:
            raise UserError(f"{self.name}: the base URL is not a valid URL ({exc})") from None
        self.api_key_env = api_key_env
        self._api_key = api_key  # the spec's api_key option: wins over the environment variable
        self.concurrency = max(1, concurrency)
        self.timeout = timeout
        self.max_retries = max(0, max_retries)
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        # Server-sent events. A stream counts only when a choice carries a finish_reason: llama.cpp ends a
        # stream it interrupts with `data: [DONE]` and no finish_reason, so [DONE] alone proves nothing.
        self.stream = stream
        self.stream_usage = True  # ask for a usage chunk; switched off for a server that rejects the field
        self.sampling = sampling or Sampling()  # the spec's sampling options; a request's own settings win
        self.stats = CallStats()
        self._client: httpx.AsyncClient | None = None

    @property
    def retries_done(self) -> int:
        return sum(self.stats.retries.values())

    # --- plumbing -----------------------------------------------------------------------------
    def _headers(self) -> dict[str, str]:
        key = self._api_key or (os.environ.get(self.api_key_env, "") if self.api_key_env else "")
        return {"Authorization": f"Bearer {key}"} if key else {}

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
            timeout = httpx.Timeout(self.timeout, connect=min(self.timeout, CONNECT_TIMEOUT_S))
            # Loading the CA bundle costs ~0.25 s of CPU per client; plain-http endpoints never use it.
            verify = self.base_url.startswith("https://")
            # A Bearer key (the spec's api_key, else $api_key_env) wins over the URL's user-info.
            headers = self._headers()
            auth = httpx.BasicAuth(*self._basic_auth) if self._basic_auth and not headers else None
            self._client = httpx.AsyncClient(timeout=timeout, limits=limits, headers=headers, auth=auth, verify=verify)
        return self._client

    def _limit(self) -> asyncio.Semaphore:
        key = (id(asyncio.get_running_loop()), self.base_url)
        if key not in _ENDPOINT_LIMITS:
            _ENDPOINT_LIMITS[key] = asyncio.Semaphore(self.concurrency)
        return _ENDPOINT_LIMITS[key]

    def _user_error_for(self, response: httpx.Response) -> UserError | None:
        if response.status_code in (401, 403):
            where = (
                "check the api_key option of the model spec"
                if self._api_key
                else "check the user and password in the URL"
                if self._basic_auth and not self._headers()
                else f"set a valid key in ${self.api_key_env} (or pass --api-key-env)"
            )
            return UserError(f"{self.base_url} rejected the API key (HTTP {response.status_code}): {where}")
        if response.status_code == 404:
            return UserError(
                f"{self.base_url}: model {self.model!r} or the chat endpoint was not found (HTTP 404); "
                "check the model name and that the base URL ends in /v1"
            )
        return None

    # --- API ----------------------------------------------------------------------------------
    async def check(self) -> None:
        """Fail fast with a clear message if the endpoint is unreachable or the key is wrong."""
        try:
            response = await self._http().get(f"{self.base_url}/models")
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise UserError(
                f"cannot reach {self.base_url} ({type(exc).__name__}): is the server running and the URL right?"
            ) from None
        except httpx.TimeoutException as exc:  # connected, but the server stayed silent
            raise UserError(
                f"{self.base_url} accepted the connection but did not answer within {self.timeout:g} s "
                f"({type(exc).__name__}): is the server overloaded or stuck? raise ?timeout=SECONDS on the "
                "model spec for a slow one"
            ) from None
        except httpx.HTTPError as exc:
            raise UserError(f"cannot talk to {self.base_url}: {type(exc).__name__}") from None
        error = self._user_error_for(response)
        if error is not None and response.status_code in (401, 403):
            raise error

    async def generate(self, messages: list[Message], params: GenParams) -> Reply:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": list(messages),
            "temperature": params.temperature,
            "max_tokens": params.max_tokens,
            **_sampling_fields(params.sampling.over(self.sampling)),
        }
        if params.seed is not None:
            body["seed"] = params.seed
        if params.stop:
            body["stop"] = list(params.stop)
        if self.stream:
            body["stream"] = True
        self.stats.calls += 1
        last_error = ""
        for attempt in range(self.max_retries + 1):
            try:
                async with self._limit():
                    return await (self._post_stream(body) if self.stream else self._post(body))
            except _Transient as exc:
                last_error = str(exc)
                if attempt == self.max_retries:
                    break
                self.stats.count_retry(exc.cause)
                delay = (
                    exc.retry_after
                    if exc.retry_after is not None
                    else min(self.backoff_max, self.backoff_base * 2**attempt) * (0.5 + random.random())
                )
                await asyncio.sleep(delay)
        self.stats.failures += 1
        raise ModelCallError(f"{self.name}: gave up after {self.max_retries + 1} attempts ({last_error})")

    async def _post(self, body: dict[str, Any]) -> Reply:
        with _transport_errors(self.timeout, streaming=False):
            response = await self._http().post(f"{self.base_url}/chat/completions", json=body)
        if response.status_code in RETRY_STATUS:
            raise _status_error(response)
        error = self._user_error_for(response)
        if error is not None:
            raise error
        if response.status_code >= 400:
            raise ModelCallError(f"{self.name}: HTTP {response.status_code}: {response.text[:200]}")
        try:
            data = response.json()
            choice = data["choices"][0]
            text = choice["message"].get("content") or ""
        except (ValueError, KeyError, IndexError, TypeError, AttributeError, RecursionError):  # too deep: malformed
            raise _Transient("malformed response body", "malformed") from None
        usage = data.get("usage") or {}
        return Reply(
            text=text,
            finish_reason=choice.get("finish_reason") or "stop",
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            meta={k[2:]: v for k, v in data.items() if k.startswith("x_")},
        )

    async def _post_stream(self, body: dict[str, Any]) -> Reply:
        """One streamed attempt. Without a usage chunk from the server, completion_tokens is the number of
        content deltas: no tokenizer is needed, and servers send about one token per delta."""
        if self.stream_usage:
            body = {**body, "stream_options": {"include_usage": True}}
        pieces: list[str] = []
        extra: dict[
            str, Any
        ] = {}  # x_ fields a server adds, prefix dropped (`dilemma serve`: x_gate_score -> gate_score)
        usage: dict[str, Any] = {}
        finish = None
        with _transport_errors(self.timeout, streaming=True):
            async with self._http().stream("POST", f"{self.base_url}/chat/completions", json=body) as response:
                if response.status_code in RETRY_STATUS:
                    raise _status_error(response)
                if response.status_code >= 400:
                    await response.aread()
                    error = self._user_error_for(response)
                    if error is not None:
                        raise error
                    if "stream_options" in body and "stream_options" in response.text:
                        rejected_usage = True  # handled below, once this response is closed
                    else:
                        raise ModelCallError(f"{self.name}: HTTP {response.status_code}: {response.text[:200]}")
                else:
                    rejected_usage = False
                    async for line in response.aiter_lines():
                        if not line.startswith("data:"):
                            continue
                        payload = line[len("data:") :].strip()
                        if payload == "[DONE]":
                            break
                        try:
                            chunk = json.loads(payload)
                            extra.update({k[2:]: v for k, v in chunk.items() if k.startswith("x_") and v is not None})
                            usage = chunk.get("usage") or usage
                            choices = chunk["choices"]
                            if not choices:  # e.g. the final usage-only chunk
                                continue
                            delta = choices[0].get("delta") or {}
                            if delta.get("content"):
                                pieces.append(delta["content"])
                            finish = choices[0].get("finish_reason") or finish
                        except (ValueError, KeyError, TypeError, AttributeError, IndexError, RecursionError):
                            raise _Transient("malformed stream chunk", "malformed") from None
        if rejected_usage:  # an older server that does not know stream_options: count deltas instead
            self.stream_usage = False
            return await self._post_stream({k: v for k, v in body.items() if k != "stream_options"})
        if finish is None:
            raise _Transient("stream ended without a finish_reason (cut by the server)", "cut_stream")
        return Reply(
            text="".join(pieces),
            finish_reason=finish,
            meta=extra,
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0) or len(pieces),
        )

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
