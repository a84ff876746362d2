"""Local transformers chat models. Pending requests from many conversations are batched together."""

from __future__ import annotations

from pathlib import Path
from typing import AsyncIterator

from dilemma.errors import UserError
from dilemma.models.base import Delta, GenParams, Message, Reply
from dilemma.models.batching import BatchingEngine

_DTYPES = {"float32": "float32", "fp32": "float32", "float16": "float16", "fp16": "float16",
           "bfloat16": "bfloat16", "bf16": "bfloat16"}


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
    model.to(dev)
    model.eval()
    return model, tokenizer


class LocalHFModel:
    """A ChatModel over local transformers weights; concurrent calls share batched generation."""

    def __init__(self, model, tokenizer, *, name: str, max_batch: int = 32):
        self.name = name
        self.model = model
        self.tokenizer = tokenizer
        self.engine = BatchingEngine(model, tokenizer, max_batch=max_batch)

    async def generate(self, messages: list[Message], params: GenParams) -> Reply:
        return await self.engine.submit(messages, params)

    def stream(self, messages: list[Message], params: GenParams) -> AsyncIterator[Delta]:
        return self.engine.stream(messages, params)

    async def aclose(self) -> None:
        self.engine.close()
