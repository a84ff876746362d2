"""Install a harm-gated LoRA defense into a transformers causal LM, save it and load it back.

`install_defense` returns the `Defense`: the handle its caller keeps (loading hands it on in `Loaded`). It
is not registered as a submodule of the model, so the base model's own state dict and save_pretrained stay
untouched. A forward hook on the decoder block whose
output is layer `detection_layer` (numbered as in `dilemmakit.layers`) computes the gate once per sequence, when the prompt is
prefilled; decode steps (one new token) reuse it, so generation costs one gate evaluation per reply.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import torch
from torch import nn

from dilemmakit.defense.config import WEIGHTS_NAME, DefenseConfig
from dilemmakit.defense.gate import GateState, HarmGate
from dilemmakit.defense.lora import HarmGatedLinear
from dilemmakit.errors import UserError
from dilemmakit.layers import block_writing, decoder_blocks


class StopForward(Exception):
    """Raised by the gate hook in gate-only passes: the layers above the detection layer are not needed."""


class Defense(nn.Module):
    def __init__(self, model, config: DefenseConfig):
        super().__init__()
        layers = decoder_blocks(model)
        config.validate(len(layers))
        self.config = config
        self.state = GateState(threshold=config.threshold, eps=config.eps, static=config.static_gate)
        hidden = int(model.config.hidden_size)
        self.gate = None if config.static_gate else HarmGate(hidden, config.head_hidden, config.head_dropout)
        if self.gate is not None:
            self.gate.to(next(model.parameters()).device)
        self.adapters = nn.ModuleDict()
        self._originals: dict[str, tuple[nn.Module, str, nn.Linear]] = {}
        for i in config.layer_range(len(layers)):
            for name, module in list(layers[i].named_modules()):
                leaf = name.rsplit(".", 1)[-1]
                if leaf in config.target_modules and isinstance(module, nn.Linear):
                    parent = layers[i].get_submodule(name.rsplit(".", 1)[0]) if "." in name else layers[i]
                    wrapped = HarmGatedLinear(
                        module, self.state, rank=config.rank, alpha=config.alpha, dropout=config.dropout
                    )
                    key = f"layers.{i}.{name}"
                    setattr(parent, leaf, wrapped)
                    self.adapters[key.replace(".", "__")] = wrapped
                    self._originals[key] = (parent, leaf, module)
        if not self.adapters:
            raise UserError(
                f"no {', '.join(config.target_modules)} linear layers found from layer {config.start_layer}"
            )
        self._stop_after_gate = False
        self._hook = None
        if self.gate is not None:
            self._hook = layers[block_writing(config.detection_layer)].register_forward_hook(self._gate_hook)
        self.train(False)

    # -- gate -------------------------------------------------------------------------------------
    def _gate_hook(self, module, args, output):
        hidden = output[0] if isinstance(output, tuple) else output
        if hidden.shape[1] > 1 or self.state.scores is None:  # prefill (or a fresh full pass)
            if self.state.pool_positions is None:
                pooled = hidden[:, -1, :]
            else:
                rows = torch.arange(hidden.shape[0], device=hidden.device)
                pooled = hidden[rows, self.state.pool_positions.to(hidden.device)]
            if self.state.training and self.gate.training:
                self.state.scores = self.gate(pooled)
            else:
                with torch.no_grad():
                    self.state.scores = self.gate(pooled)
        if self._stop_after_gate:
            raise StopForward

    def gate_scores(self, model, input_ids, attention_mask, pool_positions=None, *, grad: bool = False) -> torch.Tensor:
        """Gate probabilities (batch,) from a pass that stops at the detection layer."""
        if self.gate is None:
            return torch.ones(input_ids.shape[0])
        self.state.scores = None
        self.state.pool_positions = pool_positions
        self._stop_after_gate = True
        try:
            ctx = contextlib.nullcontext() if grad else torch.no_grad()
            with ctx:
                with contextlib.suppress(StopForward):
                    model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
        finally:
            self._stop_after_gate = False
            self.state.pool_positions = None
        if self.state.scores is None:  # the hook on the detection layer always sets them
            raise RuntimeError("the gate hook did not run during the gate pass")
        return self.state.scores

    def reset(self) -> None:
        """Forget the last batch's gate (call before a new prompt batch)."""
        self.state.scores = None
        self.state.pool_positions = None

    @contextlib.contextmanager
    def pooled_at(self, positions: torch.Tensor | None):
        """Full passes inside read the gate at these per-row positions (the last prompt token)."""
        self.state.scores = None
        self.state.pool_positions = positions
        try:
            yield
        finally:
            self.state.pool_positions = None

    @property
    def row_state(self) -> GateState | None:
        """The engine's per-row state (each reply keeps its own gate score), or None for a static defense."""
        return self.state if self.gate is not None else None

    # -- parameters -------------------------------------------------------------------------------
    def _adapter_items(self) -> Iterator[tuple[str, HarmGatedLinear]]:
        for key, a in self.adapters.items():
            yield key, cast(HarmGatedLinear, a)  # ModuleDict values are typed as plain Modules

    def gate_parameters(self) -> list[nn.Parameter]:
        return [] if self.gate is None else list(self.gate.parameters())

    def adapter_parameters(self) -> list[nn.Parameter]:
        return [p for _, a in self._adapter_items() for p in (a.lora_A, a.lora_B)]

    def train(self, mode: bool = True):
        super().train(mode)
        self.state.training = mode
        return self

    def weights(self, dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
        out = {}
        if self.gate is not None:
            out.update({f"gate.{k}": v for k, v in self.gate.state_dict().items()})
        for key, a in self._adapter_items():
            out[f"adapters.{key}.lora_A"] = a.lora_A.detach()
            out[f"adapters.{key}.lora_B"] = a.lora_B.detach()
        if dtype is not None:  # storage only: the gate and adapters always run in fp32
            out = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in out.items()}
        return {k: v.contiguous().cpu() for k, v in out.items()}

    def load_weights(self, tensors: dict[str, torch.Tensor]) -> None:
        mine = self.weights()
        missing = sorted(set(mine) - set(tensors))
        extra = sorted(set(tensors) - set(mine))
        if missing or extra:
            raise UserError(f"defense weights do not match its config (missing {missing[:3]}, unexpected {extra[:3]})")
        gate_sd = {k[len("gate.") :]: v for k, v in tensors.items() if k.startswith("gate.")}
        if self.gate is not None:
            self.gate.load_state_dict({k: v.float() for k, v in gate_sd.items()})
        with torch.no_grad():
            for key, a in self._adapter_items():
                a.lora_A.copy_(tensors[f"adapters.{key}.lora_A"].float())
                a.lora_B.copy_(tensors[f"adapters.{key}.lora_B"].float())

    # -- removal ----------------------------------------------------------------------------------
    def remove(self, model, *, merge: bool = False) -> None:
        """Put the base layers back (folding the adapters in at gate 1 when merge=True)."""
        for key, (parent, leaf, original) in self._originals.items():
            wrapped = cast(HarmGatedLinear, self.adapters[key.replace(".", "__")])
            setattr(parent, leaf, wrapped.merged_linear() if merge else original)
        if self._hook is not None:
            self._hook.remove()


def has_defense(model) -> bool:
    """True while a defense's adapters wrap the model's layers (installed, neither merged nor removed)."""
    return any(isinstance(m, HarmGatedLinear) for m in model.modules())


def install_defense(model, config: DefenseConfig) -> Defense:
    """Wrap the model's layers with a fresh defense; the returned `Defense` is the only handle to it."""
    if has_defense(model):
        raise UserError("this model already has a defense installed; merge or remove it first")
    for p in model.parameters():
        p.requires_grad_(False)
    return Defense(model, config)


def save_defense(defense: Defense, directory: Path | str, *, dtype: torch.dtype | None = torch.float16) -> Path:
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    defense.config.save(directory)
    save_file(defense.weights(dtype), str(directory / WEIGHTS_NAME))
    return directory


def load_defense(model, directory: Path | str) -> Defense:
    """Install the defense saved in `directory` onto `model` (the requirements chain is handled in loading.py)."""
    from safetensors.torch import load_file

    directory = Path(directory)
    config = DefenseConfig.load(directory)
    weights = directory / WEIGHTS_NAME
    if not weights.exists():
        raise UserError(f"{directory} has a config but no {WEIGHTS_NAME}")
    defense = install_defense(model, config)
    defense.load_weights(load_file(str(weights)))
    defense.to(next(model.parameters()).device)
    return defense
