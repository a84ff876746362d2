"""Secrets in model specs: the user-info of an endpoint URL (`http://user:password@host/v1`) and key-like
options (`?api_key=...`, `token=...`). They are used for the request only. Everything shown or stored -- a
spec's identity, run configs, the conversations' target, exports, reports, terminal and error lines -- goes
through `redact` (or `ModelSpec.identity`, which drops them), the one place that knows what a secret looks like.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote, unquote_plus

MASK = "***"
# Option names that hold a credential (`api_key_env` names a variable, not a key: it is not one).
_SECRET_NAME = re.compile(
    r"(?:^|[_-])(?:api_?key|key|token|access_token|secret|password|passwd|pwd|auth|authorization|bearer|credentials?)$",
    re.IGNORECASE,
)
# `scheme://user:password@` (greedy up to the authority's last @, so an unencoded @ in a password is covered).
_USERINFO = re.compile(r"(?<=://)[^/?#\s'\"]*@")
_QUERY_PAIR = re.compile(r"(?<=[?&])([^=&#\s'\"]+)=([^&#\s'\"]*)")


def is_secret_option(name: str) -> bool:
    return bool(_SECRET_NAME.search(unquote_plus(name)))


def redact(text: str) -> str:
    """`text` with URL user-info and the values of key-like options masked:
    `openai:m@http://u:pw@h/v1?api_key=sk-1&top_k=5` -> `openai:m@http://***@h/v1?api_key=***&top_k=5`."""
    if not text:
        return text
    text = _USERINFO.sub(MASK + "@", text)
    return _QUERY_PAIR.sub(lambda m: f"{m[1]}={MASK}" if is_secret_option(m[1]) else m[0], text)


def redact_values(data: Any) -> Any:
    """A JSON-like structure (a config dump) with every string redacted."""
    if isinstance(data, str):
        return redact(data)
    if isinstance(data, dict):
        return {key: redact_values(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [redact_values(value) for value in data]
    return data


def without_userinfo(url: str) -> str:
    """The URL without its `user:password@` part (what identities record)."""
    return _USERINFO.sub("", url, count=1)


def split_userinfo(url: str) -> tuple[str, tuple[str, str] | None]:
    """(the URL without user-info, (user, password) or None): the credentials go into the request's
    Authorization header, never into a URL that an error message might print."""
    match = _USERINFO.search(url)
    if match is None:
        return url, None
    user, _, password = match[0][:-1].partition(":")
    return without_userinfo(url), (unquote(user), unquote(password))
