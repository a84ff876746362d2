"""Lower-precision weights for generation: the `quant=` spec option (`embedded?quant=int8`).

`int8` is PyTorch's dynamic quantization of Linear layers: int8 weights (one scale per output channel),
activations quantized per call over the whole tensor. That last part hurts layers whose inputs carry
outlier features: on SmolLM2 quantizing every Linear gives a next-token KL of ~1.3-1.8 nats against
float32, so `down_proj` (its input is the MLP's outlier-heavy activation) and the tied 49k-vocab output
head stay float32 (KL ~0.19), and the oneDNN kernels are used (full 8-bit activation range; fbgemm's
7-bit range gave ~0.27). It changes the numerics, so it is opt-in and part of the spec's identity;
benchmarks/README.md gives its speed and agreement with float32. A harm gate and the LoRA adapters of
a defense stay float32 (only the frozen base layers they wrap are quantized); training and probes
refuse the option.
"""

from __future__ import annotations

import warnings

from dilemmakit.errors import UserError

QUANT_MODES = ("int8",)
KEEP_FLOAT = ("down_proj", "lm_head")  # leaf names whose inputs quantize badly (see above)


def check_quant(mode: str) -> None:
    if mode not in QUANT_MODES:
        raise UserError(f"unknown quant {mode!r}: use one of {', '.join(QUANT_MODES)} (or leave the option out)")


def quantize_for_generation(model, mode: str | None) -> None:
    """Quantize `model`'s Linear layers in place (mode `int8`), leaving a defense's gate and adapters alone."""
    if not mode:
        return
    check_quant(mode)
    import torch
    from torch import nn

    from dilemmakit.defense.gate import HarmGate

    weight = next(model.parameters())
    if weight.device.type != "cpu":
        raise UserError(f"quant={mode} runs on the CPU only: drop it on {weight.device} (dtype=bfloat16 pays there)")
    if weight.dtype != torch.float32:
        raise UserError(f"quant={mode} quantizes float32 weights: drop the dtype option")
    from torch.ao import quantization as tq

    gates = [name for name, module in model.named_modules() if isinstance(module, HarmGate)]
    per_channel = tq.QConfig(
        activation=tq.PlaceholderObserver.with_args(dtype=torch.quint8, quant_min=0, quant_max=255, is_dynamic=True),
        weight=tq.PerChannelMinMaxObserver.with_args(dtype=torch.qint8, qscheme=torch.per_channel_symmetric),
    )
    layers = {
        name: per_channel
        for name, module in model.named_modules()
        if type(module) is nn.Linear
        and not set(name.split(".")) & set(KEEP_FLOAT)  # also a defense's wrapped `down_proj.base`
        and not any(name.startswith(f"{gate}.") for gate in gates)
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization announces its move to torchao
        tq.quantize_dynamic(model, layers, inplace=True)
