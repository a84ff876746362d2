"""GPU acceptance: the embedded weights through `hf:` on CUDA, engine throughput, ERR training and probes.

Loads the embedded model's dequantized copy as `hf:<copy>?device=cuda&dtype=bfloat16` and measures:
  1. engine aggregate tok/s at concurrency 1, 32 and 128 (greedy, --new-tokens max new tokens);
  2. `dilemma defend data` (small, offline) then `dilemma defend train` one epoch on cuda (float32 weights:
     training keeps full precision);
  3. `dilemma probe` on cuda (float32, --limit prompts per set, the probe part only).
Prints a markdown block to paste into benchmarks/README.md. Exits 2 with one line when no CUDA GPU is visible.

    .venv/bin/python benchmarks/gpu_acceptance.py [--new-tokens 128] [--limit 32] [--work DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import dilemmakit  # noqa: F401  (sets the OpenMP wait policy before torch loads)
from dilemmakit.models.base import GenParams

CONCURRENCY = (1, 32, 128)


def prompts(n: int) -> list[list[dict]]:
    topics = ["the sea", "a lighthouse", "bees", "glaciers", "a library", "the moon", "old bridges", "city parks"]
    kinds = ["Write a short poem about {}.", "Describe {} in a few sentences.", "Give three facts about {}."]
    return [[{"role": "user", "content": kinds[i % 3].format(topics[i % len(topics)])}] for i in range(n)]


def engine_rates(spec: str, new_tokens: int) -> list[str]:
    import torch

    from dilemmakit.engine.batching import BatchingEngine
    from dilemmakit.loading import load_weights

    loaded = load_weights(spec, generation=True)
    model, tokenizer = loaded.model, loaded.tokenizer
    engine = BatchingEngine(model, tokenizer, max_batch=max(CONCURRENCY))
    params = GenParams(temperature=0.0, max_tokens=new_tokens)
    engine.generate_batch(prompts(4), GenParams(temperature=0.0, max_tokens=8))  # warm-up
    rows = []
    for n in CONCURRENCY:
        torch.cuda.synchronize()
        start = time.perf_counter()
        tokens = sum(r.completion_tokens for r in engine.generate_batch(prompts(n), params))
        torch.cuda.synchronize()
        wall = time.perf_counter() - start
        rows.append(f"| engine, concurrency {n} | {tokens} tokens in {wall:.2f} s | {tokens / wall:.0f} tok/s |")
        print(rows[-1], flush=True)
    engine.close()
    del model
    torch.cuda.empty_cache()
    return rows


def cli(label: str, *args: str) -> str:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "dilemmakit.cli.main", *args], capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        tail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-1:] or ["(no output)"]
        row = f"| {label} | FAILED (exit {proc.returncode}) after {wall:.0f} s | {tail[0]} |"
    else:
        last = proc.stdout.strip().splitlines()[-1:] or [""]
        row = f"| {label} | {wall:.0f} s | {last[0][:120]} |"
    print(row, flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--limit", type=int, default=32, help="probe: requests per set")
    parser.add_argument("--work", type=Path, default=None, help="where data, defense and probe output go")
    args = parser.parse_args()

    import torch

    if not torch.cuda.is_available():
        print(
            "error: no CUDA GPU is visible: this script measures the engine, training and probes on cuda",
            file=sys.stderr,
        )
        sys.exit(2)
    from dilemmakit.loading.embedded import dequantized_copy

    weights = dequantized_copy()
    work = args.work or Path(tempfile.mkdtemp(prefix="dilemma-gpu-"))
    work.mkdir(parents=True, exist_ok=True)
    generate = f"hf:{weights}?device=cuda&dtype=bfloat16"
    full = f"hf:{weights}?device=cuda&dtype=float32"
    rows = engine_rates(generate, args.new_tokens)
    rows.append(
        cli(
            "defend data (small, offline)",
            *("defend", "data", "--out", str(work / "data"), "--model", f"{generate}&defense=aligned"),
            *("--plain", "16", "--trial", "8", "--multi", "2", "--dilemmas", "8"),
        )
    )
    rows.append(
        cli(
            "defend train, 1 epoch",
            *("defend", "train", "--model", full, "--data", str(work / "data"), "--out", str(work / "defense")),
            *("--preset", "embedded", "--epochs", "1", "--no-resume"),
        )
    )
    rows.append(
        cli(
            f"probe, {args.limit} per set",
            *("probe", "--model", full, "--out", str(work / "probe"), "--limit", str(args.limit)),
            *("--parts", "probe", "--no-plots", "--quiet"),
        )
    )
    print()
    print(
        f"### GPU acceptance ({torch.cuda.get_device_name()}, torch {torch.__version__}, {time.strftime('%Y-%m-%d')})"
    )
    print()
    print(f"Embedded SmolLM2-135M through `hf:` on cuda; engine: bf16, greedy, {args.new_tokens} max new tokens.")
    print()
    print("| What | Time | Result |")
    print("|---|---|---|")
    print("\n".join(rows))
    print(f"\n(work dir: {work})")


if __name__ == "__main__":
    main()
