"""The one layer numbering that probes and defenses share.

"Layer i" means HF `output_hidden_states[i]`: layer 0 is the embeddings and layer i >= 1 is the output of
decoder block i - 1, so a model with N decoder blocks has layers 0..N. A *block* is one module of the
model's decoder layer list (`model.model.layers[b]`) and counts from 0.

Probes report layers; a defense's gate reads a layer (`detection_layer`) and its adapters wrap blocks
(`start_layer` .. `end_layer`, stored under those names in defense.json).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dilemmakit.errors import UserError

if TYPE_CHECKING:
    from torch import nn

BLOCK_PATHS = ("model.layers", "model.decoder.layers", "transformer.h", "gpt_neox.layers")


def decoder_blocks(model) -> nn.ModuleList:
    """The model's decoder blocks, in order."""
    from torch import nn

    for path in BLOCK_PATHS:
        obj = model
        try:
            for part in path.split("."):
                obj = getattr(obj, part)
        except AttributeError:
            continue
        if isinstance(obj, nn.ModuleList):
            return obj
    raise UserError(f"cannot find the decoder layers of {type(model).__name__}: ERR supports Llama-style models")


def layer_count(num_blocks: int) -> int:
    """How many layers (hidden states) a model with `num_blocks` decoder blocks has: embeddings + one per block."""
    return num_blocks + 1


def block_writing(layer: int) -> int:
    """The index of the decoder block whose output is layer `layer` (layer >= 1)."""
    if layer < 1:
        raise ValueError(f"layer {layer} is the embeddings: no decoder block writes it")
    return layer - 1
