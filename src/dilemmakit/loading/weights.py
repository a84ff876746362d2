"""Model weights from a spec: transformers weights on a device, with the spec's defense installed."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dilemmakit.errors import UserError
from dilemmakit.loading.embedded import dequantized_copy
from dilemmakit.models.spec import ModelSpec, parse_spec

if TYPE_CHECKING:
    from dilemmakit.defense.model import Defense


@dataclass(frozen=True)
class Loaded:
    """What `load_weights` built: the transformers model, its tokenizer, and the defense installed on the model
    (None when the spec names none, or when it was merged into the weights)."""

    model: Any
    tokenizer: Any
    defense: Defense | None = None

    @property
    def row_state(self):
        """The engine's per-row state: a harm-gated defense's gate score per reply (None: nothing per row)."""
        return self.defense.row_state if self.defense is not None else None


_DTYPES = {
    "float32": "float32",
    "fp32": "float32",
    "float16": "float16",
    "fp16": "float16",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
}


def resolve_device(device: str | None) -> str:
    import torch

    if device in (None, "", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device {device!r} asked for, but no CUDA GPU is visible: use device=cpu")
    return device


def resolve_dtype(dtype: str | None, device: str):
    import torch

    if dtype in (None, "", "auto"):
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    if dtype not in _DTYPES:
        raise UserError(f"unknown dtype {dtype!r}: use one of {', '.join(sorted(set(_DTYPES)))}")
    return getattr(torch, _DTYPES[dtype])


@contextmanager
def paused_gc() -> Iterator[None]:
    """No cyclic garbage collection inside: the first load imports torch and transformers, whose hundreds
    of thousands of new objects would set off collection after collection (~1 of ~7 CPU-s of a start)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def load_hf_weights(path_or_id: str, dtype: str | None = None, device: str | None = None):
    """(model, tokenizer) for a local transformers chat model, in eval mode on its device."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dev = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, dev)
    local = Path(path_or_id).expanduser()
    source = str(local) if local.exists() else path_or_id
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModelForCausalLM.from_pretrained(source, dtype=torch_dtype)
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"cannot load hf model {path_or_id!r}: {first}") from None
    if not getattr(tokenizer, "chat_template", None):
        raise UserError(f"hf model {path_or_id!r} has no chat template: use an instruct/chat model")
    model.to(dev)  # type: ignore[arg-type]  # mypy reads transformers' functools.wraps'd .to as unbound
    model.eval()
    return model, tokenizer


def weights_source(spec: ModelSpec) -> str:
    """Where a local spec's config, tokenizer and weights are read from (a directory or a hub id); the
    embedded model's dequantized copy is made on first use."""
    if spec.kind == "embedded":
        return str(dequantized_copy())
    local = Path(spec.model).expanduser()
    return str(local) if local.exists() else spec.model


def load_weights(
    spec: ModelSpec | str, *, device: str | None = None, merge: bool = False, generation: bool = False
) -> Loaded:
    """A local spec's model and tokenizer with its `defense=` installed: the one road from a spec to weights.

    `device` is used when the spec names none. `merge` folds the defense into the weights instead (only
    a static one can be), so the result is a plain model to train another defense on. `generation` allows
    the spec's `quant=` option (lower-precision weights for the engine); training and probes refuse it."""
    if isinstance(spec, str):
        spec = parse_spec(spec)
    if not spec.is_local:
        raise UserError(f"model spec {spec.text!r} names no local weights: use 'embedded' or 'hf:<path>'")
    quant = spec.options.get("quant")
    if quant and not generation:
        raise UserError(
            f"model spec {spec.text!r}: quant={quant} is for generation only; training and probes read "
            "full-precision weights (drop the quant option here)"
        )
    if quant:
        from dilemmakit.loading.quantize import check_quant

        check_quant(quant)  # before the slow load
    dtype = spec.options.get("dtype")
    device = spec.options.get("device") or device
    with paused_gc():
        source = weights_source(spec) if spec.kind == "embedded" else spec.model
        model, tokenizer = load_hf_weights(source, dtype=dtype, device=device)
    defense = None
    ref = spec.options.get("defense")
    if ref:
        from dilemmakit.defense.loading import apply_defense, merge_defense

        if merge:
            merge_defense(model, ref)  # raises a UserError for a gated defense
        else:
            defense = apply_defense(model, ref)
    if quant:
        from dilemmakit.loading.quantize import quantize_for_generation

        quantize_for_generation(model, quant)
    return Loaded(model, tokenizer, defense)
