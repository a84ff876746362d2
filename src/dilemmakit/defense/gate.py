"""The harm gate: one score per sequence from the hidden state of its last prompt token (paper eq. 2)."""

from __future__ import annotations

import torch
from torch import nn


class HarmGate(nn.Module):
    """LayerNorm -> Linear(d, h1) -> ReLU -> Dropout -> Linear(h1, h2) -> ReLU -> Dropout -> Linear(h2, 1).

    Kaiming-normal weights and a final bias of -0.5 (the official code), so an untrained gate leans
    towards "benign". Always runs in fp32 whatever the base model's dtype.
    """

    def __init__(self, hidden_size: int, hidden: tuple[int, int] = (1024, 512), dropout: float = 0.1):
        super().__init__()
        h1, h2 = hidden
        self.norm = nn.LayerNorm(hidden_size)
        final = nn.Linear(h2, 1)
        self.mlp = nn.Sequential(
            nn.Linear(hidden_size, h1),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(h1, h2),
            nn.ReLU(),
            nn.Dropout(dropout),
            final,
        )
        for layer in self.mlp:
            if isinstance(layer, nn.Linear):
                nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
                nn.init.zeros_(layer.bias)
        nn.init.constant_(final.bias, -0.5)

    def logits(self, pooled: torch.Tensor) -> torch.Tensor:
        """(batch, hidden) -> (batch,) logits."""
        return self.mlp(self.norm(pooled.float())).squeeze(-1)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(pooled))


class GateState:
    """The gate values of the batch being run, shared by every gated layer of one model.

    `scores` are the gate's raw probabilities (batch,), set once per sequence when the prompt is
    prefilled and reused for every generated token. `multiplier()` is what the adapters are scaled by.
    """

    def __init__(self, *, threshold: float, eps: float, static: bool):
        self.threshold = threshold
        self.eps = eps
        self.static = static
        self.scores: torch.Tensor | None = None
        self.pool_positions: torch.Tensor | None = None  # per-row index of the last prompt token; None = last
        self.override: float | None = None  # tests and ablations: force the gate to this value
        self.training = False

    # -- the engine's per-row state (`dilemmakit.engine.decoder.RowState`): each reply keeps its own gate --
    def clear(self) -> None:
        self.scores = None
        self.pool_positions = None

    def take(self, rows: int) -> list[torch.Tensor | None]:
        if self.scores is None or self.scores.numel() != rows:
            return [None] * rows
        return list(self.scores.detach().reshape(-1).unbind())

    def put(self, states: list) -> None:
        self.scores = None if not states or any(s is None for s in states) else torch.stack(states)

    def meta(self, state) -> dict:
        return {} if state is None else {"gate_score": round(float(state), 6)}

    def multiplier(self) -> torch.Tensor | float | None:
        """None means "skip the adapters entirely" (gate 0 and no floor at inference)."""
        if self.static:
            return 1.0
        if self.override is not None:
            g = torch.tensor([self.override])
        elif self.scores is None:
            return None
        else:
            g = self.scores
        if self.training:
            return g
        gated = torch.where(g > self.threshold, g, torch.zeros_like(g))
        if self.eps == 0 and not bool((gated > 0).any()):
            return None
        return gated + self.eps
