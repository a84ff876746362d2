"""The ERR recipe end to end: load a model spec, install a fresh gate + adapters, run both stages, save."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from dilemma.defense.config import WEIGHTS_NAME, DefenseConfig, scaled_defaults
from dilemma.defense.examples import read_jsonl
from dilemma.defense.model import decoder_layers, install_defense
from dilemma.defense.train import STAGES, TrainConfig, finish, train_adapters, train_gate
from dilemma.errors import UserError
from dilemma.parallel import process_state


def load_trainable(spec_text: str):
    """(model, tokenizer, requires): the spec's weights with any static defense merged in."""
    from dilemma.defense.loading import merge_defense
    from dilemma.models.local_hf import load_hf_weights
    from dilemma.models.spec import parse_spec

    spec = parse_spec(spec_text)
    if spec.kind == "openai":
        raise UserError("ERR trains local weights: use embedded, embedded-aligned or hf:<path>")
    if spec.kind == "embedded":
        from dilemma.models.embedded import load_embedded_weights

        model, tok = load_embedded_weights(dtype=spec.options.get("dtype"), device=spec.options.get("device"))
    else:
        model, tok = load_hf_weights(spec.model, dtype=spec.options.get("dtype"), device=spec.options.get("device"))
    requires: tuple[str, ...] = ()
    if spec.options.get("defense"):
        ref = spec.options["defense"]
        merge_defense(model, ref)  # raises a UserError for a gated defense
        from dilemma.defense.loading import resolve_defense

        requires = (ref if ref in ("aligned", "err") else str(resolve_defense(ref).resolve()),)
    return model, tok, requires


def fill_layers(config: DefenseConfig, num_layers: int) -> DefenseConfig:
    """Defaults scaled to the model when the user gave no layers (-1)."""
    detect, start = scaled_defaults(num_layers)
    return replace(config, detection_layer=detect if config.detection_layer < 0 else config.detection_layer,
                   start_layer=start if config.start_layer < 0 else config.start_layer)


def train_err(spec_text: str, data_dir: Path, out_dir: Path, config: DefenseConfig, tcfg: TrainConfig, *,
              console=None, resume: bool = True, init: Path | None = None) -> dict:
    """Both stages (tcfg.stages="both"), or one of them. `init` starts from a trained defense's weights and
    layout, e.g. to retrain only the gate of an existing defense on new data."""
    if tcfg.stages not in STAGES:
        raise UserError(f"--stages must be one of {', '.join(STAGES)}")
    if init is not None:
        try:
            config = DefenseConfig.load(init)
        except UserError as exc:
            raise UserError(f"--init: {exc}") from None
        if not (Path(init) / WEIGHTS_NAME).exists():
            raise UserError(f"--init: {init} has a config but no {WEIGHTS_NAME}")
    started = time.monotonic()
    train = read_jsonl(Path(data_dir) / "train.jsonl")
    val_path = Path(data_dir) / "val.jsonl"
    val = read_jsonl(val_path) if val_path.exists() else []
    if not any(e.harm_label for e in train) or all(e.harm_label for e in train):
        raise UserError(f"{data_dir}/train.jsonl needs both harmful and benign examples")
    model, tok, requires = load_trainable(spec_text)
    config = fill_layers(replace(config, base=spec_text, requires=requires), len(decoder_layers(model)))
    import torch

    torch.manual_seed(tcfg.seed)
    defense = install_defense(model, config)
    if init is not None:
        from safetensors.torch import load_file

        defense.load_weights(load_file(str(Path(init) / WEIGHTS_NAME)))
    report: dict = {"examples": {"train": len(train), "val": len(val)}, "stages": tcfg.stages,
                    "init": str(init) if init else None}
    if not config.static_gate and tcfg.stages in ("gate", "both"):
        report["stage1"] = train_gate(model, tok, defense, train, val, tcfg, console=console)
    if tcfg.stages in ("adapters", "both"):
        report["stage2"] = train_adapters(model, tok, defense, train, val, tcfg, out_dir, console=console, resume=resume)
    report["total_seconds"] = round(time.monotonic() - started, 1)
    state = process_state()
    if state is not None and not state.is_main_process:
        return report  # the main process writes the artefacts
    finish(defense, out_dir, tcfg, report)
    hashes = Path(data_dir) / "harmful_prompts.sha1.json"
    if hashes.exists():  # lets evaluations hold the training prompts out
        (Path(out_dir) / "train_prompts.sha1.json").write_text(hashes.read_text())
    return report
