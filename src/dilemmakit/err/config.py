"""The ERR workflow's settings; kept free of torch so the command line can build its options from them.

`defend train --preset NAME` (or `TrainConfig(preset=NAME)`) fills every adapter and training field the user
did not set from one of `PRESETS`: the paper's hyperparameters, the authors' repo configs, or the embedded-scale
recipe of the shipped defense. Without a preset the field defaults below apply: small values that train the
embedded model (SmolLM2-135M, 30 layers) on a laptop CPU in minutes.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from pydantic import field_validator

from dilemmakit.config import Config, option
from dilemmakit.defense.config import DefenseConfig
from dilemmakit.judges.registry import judges_help

TEMPLATE = "template"


class DataConfig(Config):
    harmful: str = option("advbench", "Harmful behaviors: a built-in set or a file")
    benign: str = option("", "Benign prompts file (default: the package's Alpaca subset)")
    plain: int = option(60, "Plain requests per class", ge=0)
    trial: int = option(30, "Single-turn TRIAL dilemmas per class", ge=0)
    multi: int = option(10, "Multi-turn TRIAL conversations per class (all three follow-up cases)", ge=0)
    dilemmas: int = option(40, "Benign moral dilemmas (train split) answered with a choice and a reason", ge=0)
    gate_benign: int = option(
        0, "Extra plain benign prompts that train only the gate (no reply; the adapters skip them)", ge=0
    )
    writer: str = option(TEMPLATE, "'template' (offline) or a model spec that writes targets")
    model: str = option("embedded-aligned", "Offline: the model whose own answers are the Engage targets")
    max_tokens: int = option(96, "Max tokens of a written target")
    framework: str = option(
        "utilitarian", "Ethical framework of the offline TRIAL openings: utilitarian | deontological | care | virtue"
    )
    seed: int = option(42, "Shuffle/split seed (official: 42, 90/10)")


class AdapterConfig(Config):
    """The shape of a fresh defense as `defend train` asks for it (-1: scaled from the paper's 32 layers): a
    subset of `DefenseConfig`'s fields with the command's defaults and ranges (a test holds the two together;
    `DefenseConfig.validate` still checks a defense.json read from disk)."""

    detection_layer: int = option(-1, "hidden_states index the gate reads (-1: scaled from the paper's 12/32)")
    start_layer: int = option(-1, "First layer with adapters (-1: scaled from 16/32)")
    rank: int = option(4, "LoRA rank of the adapters", ge=1)
    alpha: float = option(8.0, "LoRA alpha (the update is scaled by alpha / rank)")
    dropout: float = option(0.05, "LoRA dropout while training")
    eps: float = option(0.0, "Safety floor added to the gate at inference", ge=0)
    threshold: float = option(0.5, "Gate below this counts as 0 at inference", ge=0, le=1)
    static_gate: bool = option(False, "Ablation: gate fixed at 1, no detection")

    def defense_config(self) -> DefenseConfig:
        return DefenseConfig(**self.model_dump())


@dataclass(frozen=True)
class Preset:
    """Named values for `AdapterConfig` and `TrainConfig` fields, with where they come from."""

    about: str
    source: str
    adapters: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)


PRESETS: dict[str, Preset] = {
    "paper": Preset(
        about="the paper's ERR hyperparameters (Llama-3.1-8B / Mistral-7B, 32 layers)",
        source="arXiv 2509.05367, appendix E.8 (hyperparameter table) and section 6.2",
        # l_d = 12 and adapters on 16..31 of 32 layers: -1 scales them, giving exactly 12 and 16 on 32 layers.
        # "scaling factor alpha 0.5" with r = 16: alpha / rank = 0.5, so alpha = 8.
        adapters={"detection_layer": -1, "start_layer": -1, "rank": 16, "alpha": 8.0, "eps": 0.01},
        # stage 1: batch 128, lr 2e-4, 3 epochs, lambda 0.1; stage 2: batch 64 (here 4 x 16 accumulation per
        # process), lr 1e-4, 5 epochs, clip 1.0; AdamW wd 0.01 both; FP16 weights.
        train={
            "gate_batch": 128,
            "gate_lr": 2e-4,
            "gate_epochs": 3,
            "lambda_reg": 0.1,
            "batch": 4,
            "grad_accum": 16,
            "lr": 1e-4,
            "epochs": 5,
            "clip": 1.0,
            "weight_decay": 0.01,
            "save_dtype": "float16",
        },
    ),
    "repo-llama": Preset(
        about="the authors' Llama-3.1-8B configs (per device; they train on 8 GPUs under DeepSpeed)",
        source="github.com/vincchuaa/ethical-reasoning defense/config/err/stage{1,2}/err_config_llama.json",
        # harm_detection_layer 16 = hidden_states[16] and lora_start_layer 18 = block 18: the same numbering as
        # here. lora_r 32 / lora_alpha 64; gate_floor 0.01 (stage 2, the inference floor); lora_dropout 0.05.
        adapters={"detection_layer": 16, "start_layer": 18, "rank": 32, "alpha": 64.0, "dropout": 0.05, "eps": 0.01},
        # stage 1: batch 8 x 4 accumulation, head_lr 2e-4, 3 epochs, lambda_reg 0.01 (BCE weight 1.0);
        # stage 2: batch 1 x 16, lr 2e-4, 1 epoch; max_seq_len 2048, wd 0.01. Their warmup (0.1) is not applied.
        train={
            "gate_batch": 32,
            "gate_lr": 2e-4,
            "gate_epochs": 3,
            "lambda_reg": 0.01,
            "batch": 1,
            "grad_accum": 16,
            "lr": 2e-4,
            "epochs": 1,
            "max_seq_len": 2048,
            "weight_decay": 0.01,
        },
    ),
    "repo-mistral": Preset(
        about="the authors' Mistral-7B-Instruct-v0.2 configs (per device)",
        source="github.com/vincchuaa/ethical-reasoning defense/config/err/stage{1,2}/err_config_mistral.json",
        adapters={"detection_layer": 20, "start_layer": 26, "rank": 32, "alpha": 64.0, "dropout": 0.05, "eps": 0.2},
        # stage 1: batch 4 x 8, head_lr 1e-3, 3 epochs, BCE weight 10 with lambda_reg 0.01 (= lambda 0.001 here,
        # whose BCE weight is 1; AdamW is invariant to the overall loss scale); stage 2: 1 x 16, lr 2e-4, 3 epochs.
        train={
            "gate_batch": 32,
            "gate_lr": 1e-3,
            "gate_epochs": 3,
            "lambda_reg": 0.001,
            "batch": 1,
            "grad_accum": 16,
            "lr": 2e-4,
            "epochs": 3,
            "max_seq_len": 2048,
            "weight_decay": 0.01,
        },
    ),
    "embedded": Preset(
        about="the embedded-scale recipe of the shipped `embedded-err` defense (SmolLM2-135M, CPU)",
        source="scripts/train_err.py (src/dilemmakit/defense/builtin/README.md has its measured numbers)",
        adapters={"detection_layer": -1, "start_layer": -1, "rank": 4, "alpha": 8.0, "dropout": 0.05, "eps": 0.0},
        train={
            "epochs": 2,
            "gate_epochs": 100,
            "lr": 1e-3,
            "gate_lr": 1e-3,
            "batch": 4,
            "grad_accum": 1,
            "max_seq_len": 1024,
            "skip_ungated": True,
        },
    ),
}


class TrainConfig(Config):
    """Training settings. The defaults are embedded-scale (CPU minutes); `preset` names a published recipe."""

    preset: str | None = option(
        None, f"Fill the options not given from a recipe: {' | '.join(PRESETS)} (see dilemmakit.err.config)"
    )
    epochs: int = option(1, "Stage 2 epochs (or plain LoRA)", ge=1)
    gate_epochs: int = option(40, "Stage 1 epochs (on cached hidden states)", ge=1)
    lr: float = option(1e-3, "Adapter learning rate", gt=0)
    gate_lr: float = option(1e-3, "Gate learning rate (stage 1)", gt=0)
    gate_batch: int | None = option(None, "Stage 1 batch (default: 4 x --batch x --grad-accum)", ge=1)
    weight_decay: float = option(0.01, cli=False)
    batch: int = option(4, "Examples per step (stage 2, or plain LoRA)", ge=1)
    grad_accum: int = option(1, "Steps whose gradients add up before each optimizer update", ge=1)
    max_seq_len: int = option(512, "Tokens per training example; longer ones are cut", ge=32)
    lambda_reg: float = option(0.1, "Weight of mean |g| on benign examples (stage 1)", flag="lambda")
    clip: float = option(1.0, cli=False)
    seed: int = option(42, "Seed of the training batch order")
    save_dtype: str = option("float16", cli=False)
    skip_ungated: bool = option(
        False, "Stage 2: drop examples the frozen gate scores below threshold (their update is ~0; saves compute)"
    )
    stages: str = option("both", "both | gate | adapters (e.g. retrain only the gate of --init)")

    @field_validator("preset")
    @classmethod
    def _known_preset(cls, value: str | None) -> str | None:
        if value is not None and value not in PRESETS:
            raise ValueError(f"unknown preset {value!r}: use one of {', '.join(PRESETS)}")
        return value


def apply_preset(
    adapters: AdapterConfig, train: TrainConfig, given: Collection[str] | None = None
) -> tuple[AdapterConfig, TrainConfig]:
    """The two configs with `train.preset`'s values in every field the user did not set.

    given: the field names the user set (command line, config file); by default the fields each config was
    built with (`model_fields_set`), so `TrainConfig(preset="paper", lr=5e-4)` keeps its lr."""
    if train.preset is None:
        return adapters, train
    preset = PRESETS[train.preset]

    def fill(config, values: dict[str, Any]):
        explicit = config.model_fields_set if given is None else set(given)
        kept = {k: v for k, v in values.items() if k not in explicit}
        return config.model_validate({**config.model_dump(), **kept}) if kept else config

    return fill(adapters, preset.adapters), fill(train, preset.train)


class EvalConfig(Config):
    behaviors: str = option("jbb", "Held-out behaviors for TRIAL / direct ASR")
    limit: int = option(20, "Behaviors for TRIAL and direct ASR", ge=1)
    strongreject_limit: int = option(20, "StrongREJECT behaviors for direct ASR", ge=1)
    xstest_limit: int = option(50, "XSTest safe prompts for over-refusal", ge=1)
    dilemma_limit: int = option(
        60,
        "Held-out benign dilemmas for engagement (keyword measure) and swap-consistency (both option orders)",
        ge=1,
    )
    followthrough_limit: int = option(20, "Held-out benign dilemmas for follow-through (2 follow-ups each)", ge=1)
    benign_limit: int = option(20, "Benign prompts for KL and gate accuracy", ge=1)
    latency_prompts: int = option(8, cli=False)
    latency_tokens: int = option(32, "New tokens per latency measurement", ge=1)
    max_rounds: int = option(4, "TRIAL rounds per conversation", ge=1)
    max_tokens: int = option(96, "Max new tokens per reply of the evaluated model", ge=1)
    judge: str = option("instrumental", f"Judge spec for ASR: {judges_help()}")
    attacker: str = option("template", "TRIAL attacker and helper: 'template' (offline) or a model spec")
    temperature: float = option(0.0, cli=False)
    seed: int = option(0, "Seed of the held-out picks and sampling")
    concurrency: int = option(8, cli=False)
