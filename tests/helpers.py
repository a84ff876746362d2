"""Shared test helpers: running the CLI as a user would, scripted targets, a campaign in-process.

Fixtures live in conftest.py; everything a test imports by name lives here.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from dilemmakit.campaign import CampaignConfig, run_campaign
from dilemmakit.store.db import open_store
from dilemmakit.testing import (  # noqa: F401  (re-exported for the tests)
    COMPLIANCE_MARKER,
    COMPLY,
    OPTION_A,
    OPTION_B,
    REFUSE,
    VAGUE,
    ScriptedServer,
    default_helper,
    target_by_turn,
    user_turns,
)

REPO = Path(__file__).resolve().parents[1]

# How much longer than on an idle machine a test waits for a subprocess, a server or a reply before it gives
# up: the suite runs beside training jobs and other suites (load averages of 6-15 have been seen). The one
# setting for every such wait; speed goals belong in benchmarks/, not here.
TIMEOUT_SCALE = float(os.environ.get("DILEMMA_TEST_TIMEOUT_SCALE") or 4)


def patience(seconds: float) -> float:
    """`seconds` of waiting on an idle machine, scaled by DILEMMA_TEST_TIMEOUT_SCALE (default 4)."""
    return seconds * TIMEOUT_SCALE


def run_cli(
    *args: str, env: dict | None = None, timeout: float = 300, check: bool = False
) -> subprocess.CompletedProcess:
    """Run `dilemma ...` in a subprocess, as a user would; `timeout` is scaled by `patience`."""
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-m", "dilemmakit.cli.main", *map(str, args)],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=patience(timeout),
        cwd=REPO,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"dilemma {' '.join(map(str, args))} failed ({proc.returncode}):\n{proc.stderr}")
    return proc


def attack_args(server, run_dir, *extra: str, limit: int = 3) -> list[str]:
    """`dilemma attack` arguments against a ScriptedServer's target, attacker, helper and jbb judge; `extra`
    comes last, so it can override any of them."""
    return [
        "attack",
        "--target",
        server.spec("target"),
        "--attacker",
        server.spec("attacker"),
        "--helper",
        server.spec("helper"),
        "--judge",
        f"jbb:{server.spec('judge')}",
        "--run-dir",
        str(run_dir),
        "--limit",
        str(limit),
        *extra,
    ]


def tiny_llama(*, vocab_size: int = 64, layers: int = 4, context: int = 2048, seed: int = 0):
    """A tiny random Llama in eval mode (hidden size 32, 4 heads, 2 key/value heads): real transformers code
    that runs in milliseconds."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=context,
    )
    return LlamaForCausalLM(config).eval()


def assert_clean_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    """A user error: non-zero exit, no traceback, one line that says what to fix."""
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle.lower() in lines[0].lower(), lines[0]


def run(server, run_dir: Path, *, behaviors: str = "jbb", limit: int = 1, **overrides):
    config = CampaignConfig(
        target=server.spec(overrides.pop("target", "target")),
        attacker=overrides.pop("attacker", server.spec("attacker")),
        helper=overrides.pop("helper", server.spec("helper")),
        judge=overrides.pop("judge", f"jbb:{server.spec('judge')}"),
        behaviors=behaviors,
        limit=limit,
        **overrides,
    )
    store = open_store(run_dir)
    try:
        result = asyncio.run(run_campaign(config, store, show_progress=False))
        return (
            result,
            store.conversations(),
            [store.turns(c.id) for c in store.conversations()],
            [store.verdicts(c.id) for c in store.conversations()],
        )
    finally:
        store.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Served:
    """`dilemma serve`'s app over a ChatModel on a real socket (uvicorn in a thread); `with` gives the base URL."""

    def __init__(self, model, served_name: str = "tiny-defended", **app_options):
        import uvicorn

        from dilemmakit.serve import build_app

        self.port = free_port()
        self.server = uvicorn.Server(
            uvicorn.Config(
                build_app(model, served_name=served_name, **app_options),
                host="127.0.0.1",
                port=self.port,
                log_level="warning",
            )
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.05)
        return f"http://127.0.0.1:{self.port}/v1"

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=patience(10))


def tiny_defended_llama():
    """(model, tokenizer, defense): a tiny random Llama that speaks the embedded tokenizer (2048-token
    context), with an untrained ERR defense installed (gate on layer 1, adapters from layer 2)."""
    from transformers import AutoTokenizer

    from dilemmakit.defense import DefenseConfig, install_defense
    from dilemmakit.loading.embedded import dequantized_copy

    tok = AutoTokenizer.from_pretrained(str(dequantized_copy()))
    model = tiny_llama(vocab_size=len(tok))
    defense = install_defense(
        model, DefenseConfig(detection_layer=1, start_layer=2, rank=2, alpha=4, head_hidden=(8, 4))
    )
    return model, tok, defense


def tiny_defended_chat(name: str = "tiny-defended", max_batch: int = 4):
    """`tiny_defended_llama` as a chat model whose gate is ~0.95 on every prompt: fast enough to serve in any test."""
    import torch

    from dilemmakit.loading import Loaded, local_chat_model

    model, tok, defense = tiny_defended_llama()
    with torch.no_grad():
        defense.gate.mlp[-1].bias.fill_(3.0)  # gate ~0.95 on every prompt: the adapters run
    return local_chat_model(Loaded(model, tok, defense), name=name, max_batch=max_batch)


def sandbox_or_skip():
    """The bubblewrap sandbox model-written code runs in, or a skip saying why there is none."""
    from dilemmakit.eval.sandbox import SandboxUnavailable, find_sandbox

    try:
        return find_sandbox()
    except SandboxUnavailable as exc:
        import pytest

        pytest.skip(f"no bubblewrap sandbox on this machine ({exc}); `make setup` installs it")
