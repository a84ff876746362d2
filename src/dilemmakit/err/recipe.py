"""The ERR recipe end to end: load a model spec, install a fresh gate + adapters, run both stages, save."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from dilemmakit.defense.builtins import canonical
from dilemmakit.defense.config import WEIGHTS_NAME, DefenseConfig, scaled_defaults
from dilemmakit.defense.loading import BUILTIN, resolve_defense
from dilemmakit.defense.model import install_defense
from dilemmakit.err.examples import read_jsonl
from dilemmakit.err.train import STAGES, TrainConfig, finish, train_adapters, train_gate
from dilemmakit.errors import UserError
from dilemmakit.layers import decoder_blocks
from dilemmakit.models.spec import parse_spec
from dilemmakit.parallel import process_state


def load_trainable(spec_text: str):
    """(model, tokenizer, requires): the spec's weights with any static defense merged in."""
    from dilemmakit.loading import load_weights

    spec = parse_spec(spec_text)
    if not spec.is_local:
        raise UserError("ERR trains local weights: use embedded, embedded-aligned or hf:<path>")
    loaded = load_weights(spec, merge=True)  # a static defense folded in: nothing of it is left to hold
    requires: tuple[str, ...] = ()
    ref = spec.options.get("defense")
    if ref:
        # an alias is pinned to its version: the defense keeps the organism it was trained on
        requires = (canonical(ref) if ref in BUILTIN else str(resolve_defense(ref).resolve()),)
    return loaded.model, loaded.tokenizer, requires


def fill_layers(config: DefenseConfig, num_layers: int) -> DefenseConfig:
    """Defaults scaled to the model when the user gave no layers (-1)."""
    detect, start = scaled_defaults(num_layers)
    return replace(
        config,
        detection_layer=detect if config.detection_layer < 0 else config.detection_layer,
        start_layer=start if config.start_layer < 0 else config.start_layer,
    )


def train_err(
    spec_text: str,
    data_dir: Path,
    out_dir: Path,
    config: DefenseConfig,
    tcfg: TrainConfig,
    *,
    console=None,
    resume: bool = True,
    init: Path | None = None,
) -> dict:
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
    config = fill_layers(replace(config, base=spec_text, requires=requires), len(decoder_blocks(model)))
    import torch

    torch.manual_seed(tcfg.seed)
    defense = install_defense(model, config)
    if init is not None:
        from safetensors.torch import load_file

        defense.load_weights(load_file(str(Path(init) / WEIGHTS_NAME)))
    report: dict = {
        "examples": {"train": len(train), "val": len(val)},
        "stages": tcfg.stages,
        "init": str(init) if init else None,
    }
    if not config.static_gate and tcfg.stages in ("gate", "both"):
        report["stage1"] = train_gate(model, tok, defense, train, val, tcfg, console=console)
    if tcfg.stages in ("adapters", "both"):
        report["stage2"] = train_adapters(
            model, tok, defense, train, val, tcfg, out_dir, console=console, resume=resume
        )
    report["total_seconds"] = round(time.monotonic() - started, 1)
    state = process_state()
    if state is not None and not state.is_main_process:
        return report  # the main process writes the artefacts
    finish(defense, out_dir, tcfg, report)
    hashes = Path(data_dir) / "harmful_prompts.sha1.json"
    if hashes.exists():  # lets evaluations hold the training prompts out
        (Path(out_dir) / "train_prompts.sha1.json").write_text(hashes.read_text())
    return report
