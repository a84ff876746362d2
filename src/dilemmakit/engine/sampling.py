"""Drawing each row's next token under its own sampling settings (temperature, top-k, top-p, min-p, repetition
penalty), vectorised over the rows of a decode step."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import torch

from dilemmakit.models.base import GenParams


class SampledRow(Protocol):
    """What sampling reads of a row being decoded (`dilemmakit.engine.decoder.Row`)."""

    prompt: list[int]
    generated: list[int]
    params: GenParams
    generator: torch.Generator | None


def apply_repetition_penalty(logits: torch.Tensor, contexts: list[list[int]], penalties: list[float]) -> None:
    """In place, per row: the logits of tokens already in the row's context divided by its penalty when positive
    and multiplied by it when negative (the CTRL penalty, as transformers and vLLM apply it to prompt and reply)."""
    width = max(len(c) for c in contexts)
    ids = torch.tensor([c + [c[0]] * (width - len(c)) for c in contexts], device=logits.device)  # pad: a repeat
    pen = torch.tensor(penalties, device=logits.device, dtype=logits.dtype)[:, None]
    seen = logits.gather(-1, ids)
    logits.scatter_(-1, ids, torch.where(seen > 0, seen / pen, seen * pen))


def sampling_probs(
    logits: torch.Tensor, temperature: torch.Tensor, top_k: torch.Tensor, top_p: torch.Tensor, min_p: torch.Tensor
) -> torch.Tensor:
    """Per-row distributions to draw from: `logits` [rows, vocab]; each setting [rows, 1] (top_k 0, top_p 1,
    min_p 0: off). Temperature, then top-k, top-p on the top-k mass, min-p; the likeliest token is always kept."""
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    ranks = torch.arange(probs.shape[-1], device=probs.device)[None, :]
    keep = (top_k <= 0) | (ranks < top_k)
    in_k = sorted_probs * keep
    before = (in_k.cumsum(-1) - in_k) / in_k.sum(-1, keepdim=True)  # top-k mass ranked above each token
    keep &= (top_p >= 1) | (before < top_p)
    keep &= sorted_probs >= min_p * sorted_probs[:, :1]
    keep[:, 0] = True
    kept = sorted_probs * keep
    return torch.zeros_like(probs).scatter_(-1, order, kept / kept.sum(-1, keepdim=True))


def sample_tokens(logits: torch.Tensor, rows: Sequence[SampledRow]) -> list[int]:
    """The next token of each row under its own params (vectorised over the rows; a seeded row draws from its
    own generator). Unset sampling fields are off here: `Decoder.admit` fills in LOCAL_SAMPLING."""
    logits = logits.float()
    penalised = [i for i, r in enumerate(rows) if (r.params.repetition_penalty or 1.0) != 1.0]
    if penalised:
        sub = logits[penalised]
        apply_repetition_penalty(
            sub,
            [rows[i].prompt + rows[i].generated for i in penalised],
            [float(rows[i].params.repetition_penalty or 1.0) for i in penalised],
        )
        logits[penalised] = sub
    tokens = logits.argmax(-1)
    hot = [i for i, r in enumerate(rows) if r.params.temperature > 0]
    if hot:

        def column(values: list) -> torch.Tensor:
            return torch.tensor(values, device=logits.device)[:, None]

        params = [rows[i].params for i in hot]
        probs = sampling_probs(
            logits[hot],
            column([p.temperature for p in params]),
            column([p.top_k or 0 for p in params]),
            column([1.0 if p.top_p is None else p.top_p for p in params]),
            column([p.min_p or 0.0 for p in params]),
        )
        free = [j for j, i in enumerate(hot) if rows[i].generator is None]
        if free:
            tokens[[hot[j] for j in free]] = torch.multinomial(probs[free], 1)[:, 0]
        for j, i in enumerate(hot):
            if rows[i].generator is not None:
                tokens[i] = torch.multinomial(probs[j], 1, generator=rows[i].generator)[0]
    return tokens.tolist()
