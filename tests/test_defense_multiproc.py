"""Data-parallel training for real: two CPU processes under torchrun (gloo), as `accelerate launch` runs GPUs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

from tests.helpers import patience


def test_two_processes_train_the_same_adapters(tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    script = Path(__file__).parent / "scripts" / "ddp_train.py"
    proc = subprocess.run(
        [str(torchrun), "--standalone", "--nproc_per_node", "2", str(script), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=patience(600),
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        cwd=Path(__file__).parent.parent,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    ranks = [torch.load(tmp_path / f"rank{i}.pt") for i in (0, 1)]
    # each process saw only its half of the batches; averaged gradients keep the copies identical
    assert all(torch.equal(ranks[0][k], ranks[1][k]) for k in ranks[0])
    assert any(float(v.abs().max()) > 0 for k, v in ranks[0].items() if k.endswith("lora_B"))  # they trained
    # one progress bar: only the main process reports, and it counts its own share of the steps
    assert proc.stdout.count("LoRA") + proc.stderr.count("LoRA") == 1
