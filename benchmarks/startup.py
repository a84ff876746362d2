"""Start-up of the embedded model: a fresh process, from nothing to the first generated token.

Each run is a new Python process that loads `embedded` the way a command does (`load_model`), streams a
greedy reply to a fixed prompt and reports the CPU seconds (user + sys, all threads) and the wall seconds
from its launch to the first token. Variants, alternated run by run:

  warm     the dequantized copy is in the cache (what every start after the first one does)
  before   warm, loaded the way commands did before the start-up work (garbage collection left on)
  cold     an empty cache dir: the GGUF is hashed and converted first (once per machine)

Prints the medians, the ratios, and whether every run gave the same greedy reply.

    .venv/bin/python benchmarks/startup.py [--runs 5] [--cold-runs 1] [--no-cold]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# argv: variant, launch time (epoch s), reply tokens. Prints one JSON line.
CHILD = """
import asyncio, json, resource, sys, time

variant, launched, tokens = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])

def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime

from dilemmakit.models.base import GenParams

if variant == "before":
    from dilemmakit.loading.backends import local_chat_model
    from dilemmakit.loading.embedded import dequantized_copy
    from dilemmakit.loading.weights import Loaded, load_hf_weights

    model = local_chat_model(Loaded(*load_hf_weights(str(dequantized_copy()))), name="embedded")
else:
    from dilemmakit.loading import load_model

    model = load_model("embedded")
loaded = (cpu(), time.time() - launched)

async def reply():
    first = None
    text = ""
    stream = model.stream([{"role": "user", "content": "Name three colours of the rainbow."}],
                          GenParams(max_tokens=tokens, temperature=0.0))
    async for delta in stream:
        if first is None:
            first = (cpu(), time.time() - launched)
        text += delta.text
    await model.aclose()
    return first, text

first, text = asyncio.run(reply())
print(json.dumps({"loaded_cpu": loaded[0], "loaded_wall": loaded[1], "cpu": first[0], "wall": first[1], "text": text}))
"""


def one_start(variant: str, tokens: int, cache_dir: str | None) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    if cache_dir:
        env["DILEMMA_CACHE_DIR"] = cache_dir
    launched = time.time()
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, variant, repr(launched), str(tokens)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=900,
    )
    if proc.returncode != 0:
        sys.exit(f"the {variant} start failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="warm and before starts each")
    parser.add_argument("--cold-runs", type=int, default=1, help="cold starts (each converts the GGUF, ~1 min)")
    parser.add_argument("--no-cold", action="store_true", help="skip the cold starts")
    parser.add_argument("--tokens", type=int, default=16, help="greedy reply length compared across runs")
    args = parser.parse_args()

    results: dict[str, list[dict]] = {"warm": [], "before": [], "cold": []}
    one_start("warm", args.tokens, None)  # makes sure the user cache holds the copy, and warms the page cache
    for i in range(args.runs):
        for variant in ("before", "warm") if i % 2 else ("warm", "before"):
            results[variant].append(one_start(variant, args.tokens, None))
            print(f"  {variant:6s} run {i + 1}: {results[variant][-1]['cpu']:6.2f} s CPU", file=sys.stderr)
    for i in range(0 if args.no_cold else args.cold_runs):
        with tempfile.TemporaryDirectory(prefix="dilemma-cold-") as empty:
            results["cold"].append(one_start("cold", args.tokens, empty))
        print(f"  cold   run {i + 1}: {results['cold'][-1]['cpu']:6.2f} s CPU", file=sys.stderr)

    load = os.getloadavg()[0]
    print(f"embedded model, fresh process to first token (greedy, {args.tokens} max tokens); load average {load:.1f}")
    medians: dict[str, tuple[float, float]] = {}
    for variant, runs in results.items():
        if not runs:
            continue
        cpu = statistics.median(r["cpu"] for r in runs)
        wall = statistics.median(r["wall"] for r in runs)
        loaded = statistics.median(r["loaded_cpu"] for r in runs)
        medians[variant] = (cpu, wall)
        print(
            f"  {variant:6s} {len(runs)} runs: first token {cpu:6.2f} s CPU {wall:6.2f} s wall (median); "
            f"model ready {loaded:6.2f} s CPU"
        )
    if "before" in medians:
        b, w = medians["before"], medians["warm"]
        print(f"warm / before: CPU {w[0] / b[0]:.2f}, wall {w[1] / b[1]:.2f}")
    if "cold" in medians:
        c, w = medians["cold"], medians["warm"]
        print(f"cold / warm: CPU {c[0] / w[0]:.1f}x, wall {c[1] / w[1]:.1f}x")
    replies = {r["text"] for runs in results.values() for r in runs}
    print(f"greedy replies identical across all runs: {len(replies) == 1} ({len(replies)} distinct)")
    print("goal: warm start under 3 s to the first token")


if __name__ == "__main__":
    main()
