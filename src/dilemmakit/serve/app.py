"""`/v1/chat/completions` (with SSE streaming), `/v1/models` and `/v1/models/{id}` over one ChatModel.

The server follows OpenAI's conventions so that SDKs and red-team tools (the `openai` SDK, PyRIT,
garak) work unchanged: `n` choices, `stop` sequences, `stream_options.include_usage`, a 404
`model_not_found` for a model it does not serve, a 400 `context_length_exceeded` instead of silently
cutting a prompt that does not fit, and every error as `{"error": {"message", "type", "param", "code"}}`.

A defended model reports its harm-gate score per response: the `x_gate_score` field of the completion
(and of each choice's last stream chunk) and the `X-Dilemma-Gate` header. Local models stream token by
token (the gate is scored at prefill, so the header is known before the first token); a model that cannot
stream (a proxied endpoint) sends its finished reply in word-sized chunks. A client that disconnects
mid-stream, and a choice that meets a stop sequence, frees its batch row.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import AsyncGenerator, Callable, Iterable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from dilemmakit.errors import ModelCallError, UserError
from dilemmakit.models.base import ChatModel, Delta, GenParams, Message, Reply, StreamingChatModel
from dilemmakit.models.spec import parse_spec
from dilemmakit.serve.guard import DEFAULT_MAX_BODY_BYTES, BearerAuth, Rejected, error_response, read_json_body
from dilemmakit.serve.request import DEFAULT_MAX_TOKENS, BadRequest, ChatRequest, parse_request

GATE_HEADER = "X-Dilemma-Gate"


@runtime_checkable
class ContextWindow(Protocol):
    """A model whose context window the server can check before generating (local models)."""

    @property
    def context_length(self) -> int: ...

    def prompt_tokens(self, messages: list[Message]) -> int: ...

    def count_tokens(self, text: str) -> int: ...


_URL = re.compile(r"\b[a-zA-Z][\w+.-]*://[^\s'\"<>]+")


def _failure(exc: Exception, model: ChatModel, name: str) -> str:
    """What a client is told of a failed generation: the reason for a proxied endpoint's failure, with the
    upstream spec replaced by the served model id and any URL cut out; only the exception's kind for anything
    else."""
    if isinstance(exc, (UserError, ModelCallError)):
        reason = _URL.sub("<upstream>", str(exc).replace(model.name, name))
        return f"generation failed: {reason}"
    return f"generation failed: {type(exc).__name__}"


def public_model_id(spec: str) -> str:
    """The id clients see for a model served under its spec: never the spec itself, which may hold an
    upstream URL or a local path (`openai:gpt-4o@https://host/v1` -> `gpt-4o`, `hf:/models/qwen?dtype=..` ->
    `qwen`, `embedded?defense=/runs/d1` -> `embedded+d1`)."""
    try:
        parsed = parse_spec(spec)
    except UserError:
        return "model"
    if parsed.kind == "openai":
        base = parsed.model
    elif parsed.kind == "hf":
        base = parsed.model.rstrip("/").rsplit("/", 1)[-1]
    else:
        base = spec.split("?", 1)[0]
    defense = parsed.options.get("defense")
    return f"{base}+{defense.rstrip('/').rsplit('/', 1)[-1]}" if defense else base


def _gate_headers(meta: dict) -> dict[str, str]:
    score = meta.get("gate_score")
    return {} if score is None else {GATE_HEADER: f"{score:.6f}"}


def build_app(
    model: ChatModel,
    *,
    served_name: str | None = None,
    aliases: Iterable[str] = (),
    api_key: str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> FastAPI:
    """The app serving `model` as `served_name` (default: `public_model_id` of its spec; clients never see
    the spec). Requests may name the model by its served name, its spec or any of `aliases`; any other name
    is a 404 `model_not_found`. With `api_key`, every route wants `Authorization: Bearer <api_key>`."""
    name = served_name or public_model_id(model.name)
    accepted = {name, model.name, *aliases}
    window = model if isinstance(model, ContextWindow) else None
    app = FastAPI(title="dilemma", docs_url=None, redoc_url=None, openapi_url=None)
    if api_key is not None:
        app.add_middleware(BearerAuth, api_key=api_key)

    def failure(exc: Exception) -> str:
        return _failure(exc, model, name)

    def card() -> dict:
        return {"id": name, "object": "model", "created": 0, "owned_by": "dilemma"}

    def not_found(model_id: str) -> JSONResponse:
        return error_response(
            404,
            f"The model `{model_id}` does not exist: this server serves `{name}`",
            param="model",
            code="model_not_found",
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        where = f"{request.method} {request.url.path}"
        if exc.status_code == 404:
            message = f"Invalid URL ({where}): this server has /v1/chat/completions, /v1/models and /v1/models/{{id}}"
        elif exc.status_code == 405:
            message = f"Method not allowed ({where})"
        else:
            message = str(exc.detail)
        return error_response(exc.status_code, message, headers=dict(exc.headers or {}))

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [card()]}

    @app.get("/v1/models/{model_id:path}")
    async def model_card(model_id: str):
        return card() if model_id in accepted else not_found(model_id)

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        try:
            body = await read_json_body(request, max_body_bytes)
        except Rejected as exc:
            return error_response(exc.status, str(exc))
        try:
            req = parse_request(body)
        except BadRequest as exc:
            return error_response(400, str(exc), param=exc.param)
        if req.model is not None and req.model not in accepted:
            return not_found(req.model)
        messages = req.chat_messages()
        budget = _reply_budget(window, messages, req)
        if isinstance(budget, JSONResponse):
            return budget
        max_tokens, prompt_tokens = budget
        counted = Counted(prompt_tokens, window.count_tokens if window is not None else None)
        choices = [
            _choice(model, messages, req.params(max_tokens, choice=i), counted, stream=req.stream) for i in range(req.n)
        ]
        cid, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
        if req.stream:
            events = _merge(choices)
            try:
                first = await anext(events)
            except StopAsyncIteration:
                return error_response(500, "generation produced nothing", "server_error")
            except Exception as exc:
                await events.aclose()
                return error_response(500, failure(exc), "server_error")
            stream = _Stream(cid, created, name, req.n, req.include_usage, failure)
            return StreamingResponse(
                stream.events(first, events), media_type="text/event-stream", headers=_gate_headers(first[1].meta)
            )
        try:
            replies = await asyncio.gather(*(_last(c) for c in choices))
        except Exception as exc:  # the client gets a clean 500, the server keeps serving
            return error_response(500, failure(exc), "server_error")
        payload = {
            "id": cid,
            "object": "chat.completion",
            "created": created,
            "model": name,
            "choices": [
                {
                    "index": i,
                    "message": {"role": "assistant", "content": reply.text},
                    "logprobs": None,
                    "finish_reason": reply.finish_reason,
                }
                for i, reply in enumerate(replies)
            ],
            "usage": _usage(replies),
            "x_gate_score": replies[0].meta.get("gate_score"),
        }
        return JSONResponse(payload, headers=_gate_headers(replies[0].meta))

    return app


def _reply_budget(
    window: ContextWindow | None, messages: list[Message], req: ChatRequest
) -> tuple[int, int] | JSONResponse:
    """(max_tokens, prompt tokens) for a request that fits the context window, or the 400 OpenAI sends for
    one that does not. Without a max_tokens the reply gets DEFAULT_MAX_TOKENS, or the room that is left."""
    asked = req.requested_max_tokens
    if window is None:  # a proxied endpoint checks its own window
        return asked or DEFAULT_MAX_TOKENS, 0
    context, prompt = window.context_length, window.prompt_tokens(messages)
    room = context - prompt
    if room < 1:
        message = (
            f"This model's maximum context length is {context} tokens. However, your messages resulted in "
            f"{prompt} tokens. Please reduce the length of the messages."
        )
        return error_response(400, message, param="messages", code="context_length_exceeded")
    if asked is None:
        return min(DEFAULT_MAX_TOKENS, room), prompt
    if asked > room:
        message = (
            f"This model's maximum context length is {context} tokens. However, you requested {prompt + asked} "
            f"tokens ({prompt} in the messages, {asked} in the completion). Please reduce the length of the "
            f"messages or completion (at most {room} completion tokens fit)."
        )
        field = "max_tokens" if req.max_tokens else "max_completion_tokens"
        return error_response(400, message, param=field, code="context_length_exceeded")
    return asked, prompt


@dataclass(frozen=True)
class Counted:
    """What a choice that ends on a stop sequence reports as usage (the engine's own count is lost with
    the cancelled row): the prompt's tokens, and the generated text re-tokenized when a tokenizer is at hand."""

    prompt_tokens: int
    count_tokens: Callable[[str], int] | None = None

    def completion_tokens(self, text: str, pieces: int) -> int:
        return self.count_tokens(text) if self.count_tokens is not None else pieces


class _StopScanner:
    """Finds the first stop sequence in streamed text. `feed` returns the text that is safe to send: a tail
    that could be the start of a stop sequence is held back until the next piece tells."""

    def __init__(self, stops: tuple[str, ...]):
        self.stops = stops
        self.raw = ""  # everything generated
        self.text = ""  # the reply: `raw` up to the first stop sequence
        self.sent = 0
        self.stopped = False

    def feed(self, piece: str) -> str:
        self.raw += piece
        if self.stopped:
            return ""
        self.text += piece
        if not self.stops:
            out, self.sent = self.text[self.sent :], len(self.text)
            return out
        hits = [i for i in (self.text.find(s, self.sent) for s in self.stops) if i >= 0]
        if hits:
            self.stopped = True
            self.text = self.text[: min(hits)]
            out, self.sent = self.text[self.sent :], len(self.text)
            return out
        hold = max(
            (k for s in self.stops for k in range(1, len(s)) if self.text.endswith(s[:k])),
            default=0,
        )
        safe = max(self.sent, len(self.text) - hold)
        out, self.sent = self.text[self.sent : safe], safe
        return out

    def flush(self) -> str:
        out, self.sent = self.text[self.sent :], len(self.text)
        return out


async def _choice(
    model: ChatModel, messages: list[Message], params: GenParams, counted: Counted, *, stream: bool
) -> AsyncGenerator[Delta, None]:
    """One choice as deltas; the last carries its Reply. A stop sequence ends the reply before it
    (finish_reason "stop") and closes the model's stream, which cancels a local model's batch row."""
    if not stream and not params.stop:
        reply = await model.generate(messages, params)
        yield Delta(reply.text, reply.meta, reply)
        return
    # (an HTTP model has a `stream` *setting*, which satisfies the protocol's attribute check)
    deltas: AsyncGenerator[Delta, None]
    if isinstance(model, StreamingChatModel) and callable(model.stream):
        deltas = model.stream(messages, params)
    else:
        deltas = _word_deltas(model, messages, params)
    scanner = _StopScanner(params.stop)
    pieces = 0
    try:
        async for delta in deltas:
            pieces += 1
            text = scanner.feed(delta.text)
            if scanner.stopped:
                reply = Reply(
                    text=scanner.text,
                    finish_reason="stop",
                    prompt_tokens=(delta.reply.prompt_tokens if delta.reply is not None else 0)
                    or counted.prompt_tokens,
                    completion_tokens=counted.completion_tokens(scanner.raw, pieces),
                    meta=dict(delta.meta),
                )
                yield Delta(text, delta.meta, reply)
                return
            if delta.reply is not None:
                yield Delta(text + scanner.flush(), delta.meta, delta.reply)
                return
            if text:
                yield Delta(text, delta.meta)
    finally:  # a stop sequence, a client that left, or an error: the model stops generating this choice
        await deltas.aclose()


async def _last(choice: AsyncGenerator[Delta, None]) -> Reply:
    """The finished Reply of a choice (a non-streaming request)."""
    try:
        async for delta in choice:
            if delta.reply is not None:
                return delta.reply
    finally:
        await choice.aclose()
    raise RuntimeError("the model ended without a reply")


async def _merge(choices: list[AsyncGenerator[Delta, None]]) -> AsyncGenerator[tuple[int, Delta], None]:
    """The deltas of n choices as they come, tagged with the choice index; closing it stops every choice."""
    if len(choices) == 1:
        try:
            async for delta in choices[0]:
                yield 0, delta
        finally:
            await choices[0].aclose()
        return
    queue: asyncio.Queue[tuple[int, Delta | BaseException | None]] = asyncio.Queue()

    async def pump(i: int, choice: AsyncGenerator[Delta, None]) -> None:
        try:
            async for delta in choice:
                queue.put_nowait((i, delta))
            queue.put_nowait((i, None))
        except Exception as exc:
            queue.put_nowait((i, exc))
        finally:
            await choice.aclose()

    tasks = [asyncio.create_task(pump(i, c)) for i, c in enumerate(choices)]
    try:
        live = len(tasks)
        while live:
            i, item = await queue.get()
            if item is None:
                live -= 1
            elif isinstance(item, BaseException):
                raise item
            else:
                yield i, item
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _usage(replies: list[Reply]) -> dict[str, int]:
    prompt = max((r.prompt_tokens for r in replies), default=0)  # the n choices share one prompt
    completion = sum(r.completion_tokens for r in replies)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


async def _word_deltas(model: ChatModel, messages: list[Message], params: GenParams) -> AsyncGenerator[Delta, None]:
    reply = await model.generate(messages, params)
    pieces = re.findall(r"\s*\S+", reply.text) or [""]
    for piece in pieces[:-1]:
        yield Delta(piece, reply.meta)
    yield Delta(pieces[-1], reply.meta, reply)


@dataclass
class _Stream:
    """The server-sent events of one streamed completion (OpenAI's chunk format)."""

    cid: str
    created: int
    name: str
    n: int
    include_usage: bool
    failure: Callable[[Exception], str]

    def chunk(self, choices: list[dict], **extra) -> str:
        data = {
            "id": self.cid,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.name,
            "choices": choices,
            **({"usage": None} if self.include_usage else {}),
            **extra,
        }
        return f"data: {json.dumps(data)}\n\n"

    async def events(self, first: tuple[int, Delta], rest: AsyncGenerator[tuple[int, Delta], None]):
        replies: list[Reply] = []
        failed = False
        try:
            for i in range(self.n):
                yield self.chunk([{"index": i, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
            event = first
            while True:
                i, delta = event
                if delta.text:
                    yield self.chunk([{"index": i, "delta": {"content": delta.text}, "finish_reason": None}])
                if delta.reply is not None:
                    replies.append(delta.reply)
                    finish = [{"index": i, "delta": {}, "finish_reason": delta.reply.finish_reason}]
                    yield self.chunk(finish, x_gate_score=delta.reply.meta.get("gate_score"))
                # Lets the event loop run between chunks: a proxied reply is already whole, and without a pause
                # its chunks would all go to a dropped client before the server heard that it left.
                await asyncio.sleep(0)
                try:
                    event = await anext(rest)
                except StopAsyncIteration:
                    break
                except Exception as exc:  # the headers are sent: end with an OpenAI-style error event
                    error = {"message": self.failure(exc), "type": "server_error"}
                    yield f"data: {json.dumps({'error': error})}\n\n"
                    failed = True
                    break
            if self.include_usage and not failed:
                yield self.chunk([], usage=_usage(replies))
        finally:  # also when the client went away: its rows leave the batch
            await rest.aclose()
        yield "data: [DONE]\n\n"
