"""What `dilemma serve` checks before a request reaches the model: the API key (every route), the body's
size and the JSON's nesting depth. Each rejection is an error in OpenAI's shape, as SDKs expect it."""

from __future__ import annotations

import hmac
import json

from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

DEFAULT_MAX_BODY_BYTES = 4 * 2**20
MAX_JSON_DEPTH = 64  # a chat request nests about 5 deep (messages -> content parts); tool schemas a few more
API_KEY_ENV = "DILEMMA_SERVE_API_KEY"


def error_response(
    status: int,
    message: str,
    kind: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """`{"error": {"message", "type", "param", "code"}}`, OpenAI's error body."""
    return JSONResponse(
        {"error": {"message": message, "type": kind, "param": param, "code": code}},
        status_code=status,
        headers=headers,
    )


class BearerAuth:
    """ASGI middleware: a request without `Authorization: Bearer <api_key>` gets OpenAI's 401, whatever its
    route (unknown routes included, so the key is checked before anything about the server is told)."""

    def __init__(self, app: ASGIApp, api_key: str):
        self.app = app
        self.expected = f"Bearer {api_key}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((value for name, value in scope["headers"] if name == b"authorization"), None)
        if given is not None and hmac.compare_digest(given.strip(), self.expected):
            await self.app(scope, receive, send)
            return
        message = (
            "You didn't provide an API key: send `Authorization: Bearer <key>`"
            if given is None
            else "Incorrect API key provided"
        )
        response = error_response(
            401,
            f"{message} (the key `dilemma serve` was started with)",
            code="invalid_api_key",
            headers={"WWW-Authenticate": "Bearer"},
        )
        await response(scope, receive, send)


class Rejected(Exception):
    """A request body the server will not parse: its HTTP status and message."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


async def read_json_body(request: Request, max_bytes: int) -> object:
    """The request's JSON body, read no further than `max_bytes` (413 beyond) and nested at most
    MAX_JSON_DEPTH deep (400 beyond; never a RecursionError)."""
    too_large = Rejected(413, f"the request body is larger than the server's limit of {max_bytes} bytes")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():  # a chunked upload has no Content-Length: count as it comes
        size += len(chunk)
        if size > max_bytes:
            raise too_large
        chunks.append(chunk)
    too_deep = Rejected(400, f"the request body nests deeper than {MAX_JSON_DEPTH} levels")
    try:
        body = json.loads(b"".join(chunks))
    except RecursionError:
        raise too_deep from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise Rejected(400, "the request body is not valid JSON") from None
    if json_depth(body, stop_after=MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        raise too_deep
    return body


def json_depth(value: object, *, stop_after: int | None = None) -> int:
    """How deep objects and arrays nest in `value` (a scalar is 0, `[]` is 1), counted without recursion;
    it stops counting past `stop_after`."""
    deepest = 0
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: list = list(item.values())
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        if stop_after is not None and deepest > stop_after:
            break
        stack.extend((child, depth + 1) for child in children)
    return deepest
