"""Configuration of a harm-gated LoRA defense (ERR), saved next to its weights as `defense.json`."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from dilemmakit.errors import UserError
from dilemmakit.userdata import ENCODING, loads_json

CONFIG_NAME = "defense.json"
WEIGHTS_NAME = "defense.safetensors"
TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass
class DefenseConfig:
    """Where the gate reads, where the adapters sit, and how the gate is applied at inference.

    Numbered as in `dilemmakit.layers`: `detection_layer` is a layer (a `hidden_states` index, 0 = embeddings),
    so the gate reads the output of block `detection_layer - 1`; adapters wrap blocks `start_layer ..` (0-based). The gate must be
    known before the first adapter runs: detection_layer <= start_layer.
    """

    detection_layer: int = 11
    start_layer: int = 15
    end_layer: int | None = None  # exclusive; None = to the last layer
    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.05
    eps: float = 0.0  # the paper's safety floor, added in eval mode only
    threshold: float = 0.5
    target_modules: tuple[str, ...] = TARGET_MODULES
    static_gate: bool = False  # ablation / plain LoRA: gate fixed at 1, no detection head
    head_hidden: tuple[int, int] = (1024, 512)
    head_dropout: float = 0.1
    base: str = ""  # the model spec the defense was trained on (informational)
    requires: tuple[str, ...] = ()  # defenses folded into the base first (e.g. the aligned adapter)
    extra: dict = field(default_factory=dict)

    @property
    def scaling(self) -> float:
        return self.alpha / self.rank

    def layer_range(self, num_layers: int) -> range:
        end = num_layers if self.end_layer is None else min(self.end_layer, num_layers)
        return range(self.start_layer, end)

    def validate(self, num_layers: int | None = None) -> None:
        if self.rank < 1:
            raise UserError("--rank must be at least 1")
        if not 0.0 <= self.threshold <= 1.0:
            raise UserError("--threshold must be in [0, 1]")
        if self.eps < 0:
            raise UserError("--eps must be >= 0")
        if not self.static_gate and self.detection_layer > self.start_layer:
            raise UserError(
                f"--detection-layer ({self.detection_layer}) must be <= --start-layer "
                f"({self.start_layer}): the gate must be known before the first adapter runs"
            )
        if num_layers is not None:
            if not 0 <= self.start_layer < num_layers:
                raise UserError(f"--start-layer {self.start_layer} is outside the model's {num_layers} layers")
            if not self.static_gate and not 1 <= self.detection_layer <= num_layers:
                raise UserError(f"--detection-layer {self.detection_layer} must be in 1..{num_layers}")

    def save(self, directory: Path) -> None:
        data = asdict(self)
        data["target_modules"] = list(self.target_modules)
        data["head_hidden"] = list(self.head_hidden)
        data["requires"] = list(self.requires)
        (Path(directory) / CONFIG_NAME).write_text(json.dumps(data, indent=2) + "\n")

    @classmethod
    def load(cls, directory: Path) -> DefenseConfig:
        path = Path(directory) / CONFIG_NAME
        if not path.exists():
            raise UserError(f"{directory} is not a defense directory: it has no {CONFIG_NAME}")
        try:
            data = loads_json(path.read_text(encoding=ENCODING))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise UserError(f"{path} is not valid JSON: {exc}") from None
        known = {f.name for f in fields(cls)}
        data = {k: v for k, v in data.items() if k in known}
        if "target_modules" in data:
            data["target_modules"] = tuple(data["target_modules"])
        if "requires" in data:
            data["requires"] = tuple(data["requires"])
        if "head_hidden" in data:
            data["head_hidden"] = tuple(data["head_hidden"])
        return cls(**data)


def scaled_defaults(num_layers: int) -> tuple[int, int]:
    """(detection_layer, start_layer) scaled from the paper's 12 and 16 of 32 layers."""
    return max(1, round(num_layers * 12 / 32)), min(num_layers - 1, round(num_layers * 16 / 32))
