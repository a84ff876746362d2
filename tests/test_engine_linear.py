"""Decode-shaped Linear layers (`dilemmakit.engine.linear`): the same results, another operand order."""

from __future__ import annotations

import torch
from torch import nn

from dilemmakit.engine.linear import SKINNY_ROWS, SkinnyLinear, use_skinny_linears


def test_skinny_linears_agree_with_nn_linear_and_keep_the_parameters():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(48, 96), nn.ReLU(), nn.Linear(96, 40, bias=False))
    reference = {k: v.clone() for k, v in model.state_dict().items()}
    inputs = [torch.randn(1, 48), torch.randn(3, 5, 48), torch.randn(SKINNY_ROWS + 1, 48)]
    with torch.no_grad():
        expected = [model(x) for x in inputs]
    assert use_skinny_linears(model) == 2
    assert all(type(m) is SkinnyLinear for m in (model[0], model[2])) and isinstance(model[0], nn.Linear)
    assert use_skinny_linears(model) == 0  # already done
    assert all(torch.equal(v, reference[k]) for k, v in model.state_dict().items())
    with torch.no_grad():
        for x, want in zip(inputs, expected, strict=True):
            got = model(x)
            assert got.shape == want.shape and got.is_contiguous()
            assert torch.allclose(got, want, atol=1e-5, rtol=1e-5)


def test_gradients_still_flow_through_the_plain_product():
    layer = nn.Linear(8, 4)
    use_skinny_linears(layer)
    x = torch.randn(2, 8, requires_grad=True)
    layer(x).sum().backward()
    assert x.grad is not None and layer.weight.grad is not None
