"""Linear layers over a few rows (a decode step) computed as `W @ x^T`.

A decode step multiplies a few rows by every weight matrix. On CPU, BLAS runs that product faster with the
weight as the left operand (the wide dimension is then the output's rows): measured on the embedded
model's shapes at 32 rows, ~20% less time for the decoder blocks and ~40% for the 49k-token output head.
The same parameters, the same BLAS; only the operand order changes, so results agree to float rounding.
Prefill passes (many rows) and anything that needs gradients keep `nn.Linear.forward`.
"""

from __future__ import annotations

import torch
from torch import nn

SKINNY_ROWS = 64  # at most this many rows take the weight-first product


class SkinnyLinear(nn.Linear):
    """An `nn.Linear` whose inference on a few CPU rows runs as `(W @ x^T)^T`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = x.shape[-1]
        rows = x.numel() // features if features else 0
        if (
            not 0 < rows <= SKINNY_ROWS
            or torch.is_grad_enabled()
            or x.device.type != "cpu"
            or x.dtype != self.weight.dtype
        ):
            return super().forward(x)
        out = torch.mm(self.weight, x.reshape(rows, features).t()).t()
        if self.bias is not None:
            out = out + self.bias
        return out.contiguous().view(*x.shape[:-1], self.out_features)


def use_skinny_linears(model: nn.Module) -> int:
    """Give every plain `nn.Linear` of a CPU model the weight-first product for a few rows (in place: the
    class changes, the parameters and state dict do not). Returns how many layers changed."""
    changed = 0
    for module in model.modules():
        if type(module) is nn.Linear and module.weight.device.type == "cpu":
            module.__class__ = SkinnyLinear
            changed += 1
    return changed
