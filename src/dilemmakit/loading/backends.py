"""Model backends by spec kind: each builds the ChatModel a parsed spec names.

A new backend registers its kind (how the spec reads, its options with their help) together with its builder:

    MINE = SpecKind("mykind", read_mine, {"concurrency": "requests in flight", **SAMPLING_OPTIONS}, "'mykind:<name>'")

    @register_backend(MINE)
    def build_mine(spec: ModelSpec, defaults: BackendDefaults) -> ChatModel:
        return MyModel(spec.model, concurrency=spec.int_option("concurrency", defaults.concurrency))
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dilemmakit.errors import UserError
from dilemmakit.models.base import ChatModel, Sampling
from dilemmakit.models.spec import EMBEDDED, HF, LLAMACPP, OPENAI, ModelSpec, SpecKind, parse_spec, register_kind

if TYPE_CHECKING:
    from dilemmakit.loading.weights import Loaded


@dataclass(frozen=True)
class BackendDefaults:
    """Settings a spec's own options override."""

    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = 16


Builder = Callable[[ModelSpec, BackendDefaults], ChatModel]
BACKENDS: dict[str, Builder] = {}


def register_backend(*kinds: SpecKind) -> Callable[[Builder], Builder]:
    """Register `builder` for `kinds`, and the kinds with the spec parser (their text, options and help)."""

    def register(builder: Builder) -> Builder:
        for kind in kinds:
            register_kind(kind)
            BACKENDS[kind.name] = builder
        return builder

    return register


def load_model(spec: ModelSpec | str, *, api_key_env: str = "OPENAI_API_KEY", concurrency: int = 16) -> ChatModel:
    """Build the ChatModel a spec names. Local weights are loaded here (slow); HTTP models are lazy."""
    if isinstance(spec, str):
        spec = parse_spec(spec)
    if spec.kind not in BACKENDS:
        raise UserError(f"no backend for model spec kind {spec.kind!r}: use one of {', '.join(BACKENDS)}")
    return BACKENDS[spec.kind](spec, BackendDefaults(api_key_env=api_key_env, concurrency=concurrency))


def local_chat_model(
    loaded: Loaded,
    *,
    name: str,
    max_batch: int = 32,
    sampling: Sampling | None = None,
    prefix_cache_mb: int | None = None,
) -> ChatModel:
    """A ChatModel over weights already loaded (with their defense, if any, wired to the engine)."""
    from dilemmakit.engine.local import LocalHFModel
    from dilemmakit.engine.prefix_cache import PREFIX_CACHE_MB

    return LocalHFModel(
        loaded.model,
        loaded.tokenizer,
        name=name,
        max_batch=max_batch,
        row_state=loaded.row_state,
        defense=loaded.defense,
        sampling=sampling,
        prefix_cache_mb=PREFIX_CACHE_MB if prefix_cache_mb is None else prefix_cache_mb,
    )


@register_backend(EMBEDDED, HF)
def build_local(spec: ModelSpec, defaults: BackendDefaults) -> ChatModel:
    from dilemmakit.engine.prefix_cache import PREFIX_CACHE_MB
    from dilemmakit.loading.weights import load_weights

    max_batch = spec.int_option("max_batch", 32)
    prefix_cache_mb = spec.int_option("prefix_cache_mb", PREFIX_CACHE_MB)
    if prefix_cache_mb < 0:
        raise UserError(f"prefix_cache_mb must be 0 (off) or more, got {prefix_cache_mb}")
    return local_chat_model(
        load_weights(spec, generation=True),
        name=spec.identity,
        max_batch=max_batch,
        sampling=spec.sampling,
        prefix_cache_mb=prefix_cache_mb,
    )


@register_backend(OPENAI)
def build_openai(spec: ModelSpec, defaults: BackendDefaults) -> ChatModel:
    from dilemmakit.models.openai_compat import DEFAULT_TIMEOUT_S, OpenAICompatModel

    return OpenAICompatModel(
        model=spec.model,
        base_url=spec.base_url,
        api_key_env=spec.options.get("api_key_env", defaults.api_key_env),
        api_key=spec.options.get("api_key") or None,
        concurrency=spec.int_option("concurrency", defaults.concurrency),
        timeout=spec.float_option("timeout", DEFAULT_TIMEOUT_S),
        max_retries=spec.int_option("max_retries", 5),
        backoff_base=spec.float_option("backoff", 0.5),
        name=spec.identity,
        stream=spec.options.get("stream", "0").lower() in ("1", "true", "yes"),
        sampling=spec.sampling,
    )


@register_backend(LLAMACPP)
def build_llamacpp(spec: ModelSpec, defaults: BackendDefaults) -> ChatModel:
    from dilemmakit.llamacpp.model import build_managed

    return build_managed(spec)
