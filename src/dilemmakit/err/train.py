"""Training: plain LoRA (static gate), and ERR's two stages (gate, then adapters with the gate frozen).

Stage 1 trains only the gate head with BCE + lambda * mean(|g| on benign). The base is frozen and the
gate reads a fixed layer, so the pooled hidden states are computed once and the head trains on them.
Stage 2 freezes gate and base and trains the adapters with next-token loss on the assistant reply; the
training forward pass uses the raw gate (no threshold, no floor), as in the official code.
Runs on CPU or GPU; under `accelerate launch` (GPUs) or `torchrun` (CPU processes) it runs data-parallel.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch
from rich.progress import Progress

from dilemmakit.defense.model import Defense, save_defense
from dilemmakit.err.config import TrainConfig
from dilemmakit.err.examples import Example, collate, encode, with_reply
from dilemmakit.errors import UserError
from dilemmakit.parallel import accelerator, average_gradients, broadcast_from_main, even_shard, process_state
from dilemmakit.progress import progress_bar

CHECKPOINT = "checkpoint.pt"
STAGES = ("both", "gate", "adapters")


def _progress(console, *, enabled: bool = True) -> Progress:
    """A progress bar; off in the non-main processes of a data-parallel run."""
    return progress_bar("loss {task.fields[loss]:.4f}", console=console, show=enabled, remaining=True)


def _batches(items: list, size: int, rng: torch.Generator) -> list[list]:
    order = torch.randperm(len(items), generator=rng).tolist()
    return [[items[i] for i in order[k : k + size]] for k in range(0, len(order), size)]


def _length_grouped_batches(encoded: list[dict], size: int, rng: torch.Generator, window: int = 16) -> list[list]:
    """Random batches of rows of similar length: shuffle, sort each window of `window` batches by length, shuffle
    the batches. Every row is padded to its batch's longest, and once prompts range from 20 to 500 tokens (short
    requests beside whole dilemmas) random batches spend most of their compute on padding."""
    order = torch.randperm(len(encoded), generator=rng).tolist()
    batches: list[list] = []
    for k in range(0, len(order), size * window):
        chunk = sorted(order[k : k + size * window], key=lambda i: len(encoded[i]["input_ids"]))
        batches += [[encoded[i] for i in chunk[j : j + size]] for j in range(0, len(chunk), size)]
    return [batches[i] for i in torch.randperm(len(batches), generator=rng).tolist()]


def train_gate(
    model, tokenizer, defense: Defense, train: list[Example], val: list[Example], cfg: TrainConfig, *, console=None
) -> dict:
    """Stage 1. Returns {"train_acc", "val_acc", "seconds"}."""
    if defense.gate is None:
        raise UserError("this defense has a static gate: there is no gate to train")
    started = time.monotonic()
    state = process_state()
    main = state is None or state.is_main_process
    feats, labels = _pooled_features(
        model, tokenizer, defense, train, cfg, console=console, what="gate features" if main else ""
    )
    head = defense.gate
    weight = class_weights(labels)
    opt = torch.optim.AdamW(head.parameters(), lr=cfg.gate_lr, weight_decay=cfg.weight_decay)
    g = torch.Generator().manual_seed(cfg.seed)
    head.train()
    with _progress(console, enabled=main) as bar:
        task = bar.add_task("stage 1: gate", total=cfg.gate_epochs, loss=0.0)
        for _ in range(cfg.gate_epochs):
            total = 0.0
            gate_batch = cfg.gate_batch or max(1, cfg.batch * cfg.grad_accum * 4)
            for idx in _batches(list(range(len(feats))), gate_batch, g):
                x, y = feats[idx], labels[idx]
                logits = head.logits(x)
                prob = torch.sigmoid(logits)
                bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, y, weight=weight[idx])
                sparsity = ((1 - y) * prob.abs()).mean()
                loss = bce + cfg.lambda_reg * sparsity
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(idx)
            bar.update(task, advance=1, loss=total / len(feats))
    head.eval()
    broadcast_from_main(head.parameters())  # every process trained the same head; make it bit-identical
    result = {"train_acc": _accuracy(head, feats, labels, defense.config.threshold)}
    if val:
        vf, vl = _pooled_features(model, tokenizer, defense, val, cfg, console=None, what="")
        result["val_acc"] = _accuracy(head, vf, vl, defense.config.threshold)
    result["seconds"] = round(time.monotonic() - started, 1)
    return result


def class_weights(labels: torch.Tensor) -> torch.Tensor:
    """Per-example BCE weights that give both classes the same total weight (mean 1): all ones on balanced
    data (the paper's, which the builder balances 1:1); gate-only benign prompts make the benign class bigger."""
    positives = float(labels.sum())
    negatives = float(len(labels)) - positives
    if positives == 0 or negatives == 0:
        return torch.ones_like(labels)
    half = len(labels) / 2
    return torch.where(labels > 0.5, half / positives, half / negatives)


def _accuracy(head, feats, labels, threshold: float) -> float:
    with torch.no_grad():
        pred = (torch.sigmoid(head.logits(feats)) > threshold).float()
    return round(float((pred == labels).float().mean()), 4)


def _pooled_features(model, tokenizer, defense, examples, cfg, *, console, what: str):
    # The whole prompt, never cut to max_seq_len: at inference the gate reads the whole conversation, and
    # a gate-only pass (up to the detection layer, no backward) is cheap even for long dilemmas.
    encoded = [encode(e, tokenizer, max_seq_len=1 << 30) for e in examples]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    device = next(model.parameters()).device
    pooled, labels = [], []
    captured: dict[str, torch.Tensor] = {}
    gate = defense.gate
    original = gate.forward

    def capturing_forward(x: torch.Tensor) -> torch.Tensor:
        captured["x"] = x.detach().float()
        return original(x)

    gate.forward = capturing_forward
    try:
        with _progress(console, enabled=bool(what)) as bar:
            task = bar.add_task(what or "features", total=len(encoded), loss=0.0, visible=bool(what))
            for k in range(0, len(encoded), 8):
                b = collate([{**e, "labels": e["input_ids"]} for e in encoded[k : k + 8]], pad)
                defense.gate_scores(
                    model, b["input_ids"].to(device), b["attention_mask"].to(device), b["pool"].to(device)
                )
                pooled.append(captured["x"].cpu())
                labels.append(b["harm"])
                bar.update(task, advance=len(b["pool"]))
    finally:
        gate.forward = original
    return torch.cat(pooled), torch.cat(labels)


def train_adapters(
    model,
    tokenizer,
    defense: Defense,
    train: list[Example],
    val: list[Example],
    cfg: TrainConfig,
    out_dir: Path,
    *,
    console=None,
    resume: bool = True,
) -> dict:
    """Stage 2 (or plain LoRA when the gate is static): next-token loss on the assistant reply only."""
    started = time.monotonic()
    train, val = with_reply(train), with_reply(val)
    for p in defense.gate_parameters():
        p.requires_grad_(False)
    params = defense.adapter_parameters()
    for p in params:
        p.requires_grad_(True)
    acc = accelerator(cfg.grad_accum)
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    encoded = [encode(e, tokenizer, cfg.max_seq_len) for e in train]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if cfg.skip_ungated and defense.gate is not None:
        encoded = _gated_only(model, defense, encoded, pad)
    out_dir = Path(out_dir)
    ckpt_path = out_dir / CHECKPOINT
    start_epoch = 0
    if resume and ckpt_path.exists():
        # Tensors and plain values only: unpickling anything else could run code from the file.
        try:
            state = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        except Exception as exc:  # pickle.UnpicklingError for a foreign object, RuntimeError for a torn file
            raise UserError(
                f"cannot resume from {ckpt_path}: not a checkpoint this version wrote ({type(exc).__name__}); "
                "delete it to train from the start"
            ) from None
        if isinstance(state, dict) and state.get("train_config") == cfg.model_dump():
            defense.load_weights(state["weights"])
            opt.load_state_dict(state["optimizer"])
            start_epoch = state["epoch"]
    model.to(acc.device)  # not wrapped in DDP: gradients are averaged by average_gradients
    opt = acc.prepare(opt)
    device = acc.device
    steps_per_epoch = math.ceil(math.ceil(len(encoded) / cfg.batch) / acc.num_processes)
    history = []
    with _progress(console, enabled=acc.is_main_process) as bar:
        task = bar.add_task(
            "stage 2: adapters" if defense.gate is not None else "LoRA",
            total=steps_per_epoch * cfg.epochs,
            completed=steps_per_epoch * start_epoch,
            loss=0.0,
        )
        for epoch in range(start_epoch, cfg.epochs):
            g = torch.Generator().manual_seed(cfg.seed + epoch)
            model.train()
            defense.train(True)
            if defense.gate is not None:
                defense.gate.eval()
            shard = even_shard(_length_grouped_batches(encoded, cfg.batch, g), acc.process_index, acc.num_processes)
            running = 0.0
            for step, items in enumerate(shard, 1):
                b = collate(items, pad)
                with acc.accumulate(model):
                    defense.state.scores = None
                    defense.state.pool_positions = b["pool"].to(device)
                    loss = reply_loss(model, b, device)
                    acc.backward(loss)
                    if acc.sync_gradients:
                        average_gradients(params)
                    if acc.sync_gradients and cfg.clip:
                        acc.clip_grad_norm_(params, cfg.clip)
                    opt.step()
                    opt.zero_grad()
                running = 0.9 * running + 0.1 * float(loss.detach()) if step > 1 else float(loss.detach())
                bar.update(task, advance=1, loss=running)
            defense.state.pool_positions = None
            history.append(round(running, 4))
            if acc.is_main_process:
                out_dir.mkdir(parents=True, exist_ok=True)
                torch.save(
                    {
                        "epoch": epoch + 1,
                        "weights": defense.weights(),
                        "optimizer": opt.state_dict(),
                        "train_config": cfg.model_dump(),
                    },
                    ckpt_path,
                )
    model.eval()
    defense.train(False)
    result = {"loss_by_epoch": history, "seconds": round(time.monotonic() - started, 1)}
    if val:
        result["val_loss"] = round(evaluate_loss(model, tokenizer, defense, val, cfg), 4)
    return result


def reply_loss(model, b: dict, device) -> torch.Tensor:
    """Next-token loss on the reply tokens. The LM head runs on those positions only: on a small model
    the vocabulary projection is a large share of the compute."""
    inner = getattr(getattr(model, "module", model), "model", None)
    head = getattr(getattr(model, "module", model), "lm_head", None)
    labels = b["labels"].to(device)
    if inner is None or head is None:
        return model(
            input_ids=b["input_ids"].to(device),
            attention_mask=b["attention_mask"].to(device),
            labels=labels,
            use_cache=False,
        ).loss
    hidden = inner(
        input_ids=b["input_ids"].to(device), attention_mask=b["attention_mask"].to(device), use_cache=False
    ).last_hidden_state
    targets = labels[:, 1:]
    keep = targets != -100
    logits = head(hidden[:, :-1][keep])
    return torch.nn.functional.cross_entropy(logits.float(), targets[keep])


def _gated_only(model, defense: Defense, encoded: list[dict], pad: int) -> list[dict]:
    device = next(model.parameters()).device
    kept: list[dict] = []
    for k in range(0, len(encoded), 8):
        chunk = encoded[k : k + 8]
        b = collate(chunk, pad)
        scores = defense.gate_scores(
            model, b["input_ids"].to(device), b["attention_mask"].to(device), b["pool"].to(device)
        )
        kept.extend(e for e, g in zip(chunk, scores.tolist(), strict=False) if g > defense.config.threshold)
    return kept or encoded


def evaluate_loss(model, tokenizer, defense: Defense, examples: list[Example], cfg: TrainConfig) -> float:
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    device = next(model.parameters()).device
    encoded = [encode(e, tokenizer, cfg.max_seq_len) for e in with_reply(examples)]
    total, n = 0.0, 0
    defense.train(True)  # raw gate, as in training
    if defense.gate is not None:
        defense.gate.eval()
    model.eval()
    try:
        with torch.no_grad():
            for k in range(0, len(encoded), cfg.batch):
                b = collate(encoded[k : k + cfg.batch], pad)
                defense.state.scores = None
                defense.state.pool_positions = b["pool"].to(device)
                total += float(reply_loss(model, b, device)) * len(b["pool"])
                n += len(b["pool"])
    finally:
        defense.state.pool_positions = None
        defense.train(False)
    return total / max(1, n)


def finish(defense: Defense, out_dir: Path, cfg: TrainConfig, report: dict) -> Path:
    """Write the final artefacts (safetensors + defense.json + train_report.json); drop the checkpoint."""
    import json

    dtype = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": None}[cfg.save_dtype]
    out_dir = Path(out_dir)
    save_defense(defense, out_dir, dtype=dtype)
    (out_dir / "train_report.json").write_text(
        json.dumps({"train_config": cfg.model_dump(), **report}, indent=2) + "\n"
    )
    (out_dir / CHECKPOINT).unlink(missing_ok=True)
    return out_dir
