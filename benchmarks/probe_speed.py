"""Probe capture speed: the shared-prefix cache against whole-prompt passes, side by side.

    .venv/bin/python benchmarks/probe_speed.py [--limit 8] [--rounds 2] [--batch-size 8] [--model embedded]

Builds `dilemma probe`'s own prompt sets (JBB pairs, TRIAL and neutral wrappers) and captures them
with and without the cache, alternating, on one loaded model, so both see the same load on shared
cores. Prints tokens run through the model (exact), wall and CPU seconds per mode, the ratios, and
the largest difference between the two captures' activations (relative to each layer's largest
value). Goal (issue 16): the cache cuts the capture time and leaves the activations unchanged.
Prints the numbers; never asserts.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def tokens_run(reader, prompts: dict[str, list[str]], share: bool) -> int:
    from dilemmakit.probes.capture import shared_prefix_length

    total = 0
    for texts in prompts.values():
        ids = [reader.encode([{"role": "user", "content": t}]) for t in texts]
        skip = shared_prefix_length(ids) if share else 0
        total += sum(len(s) - skip for s in ids) + skip
    return total


def main() -> None:
    from dilemmakit.probes.capture import ActivationStore, capture
    from dilemmakit.probes.pipeline import open_reader
    from dilemmakit.probes.prompt_sets import build_sets

    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="embedded")
    ap.add_argument("--limit", type=int, default=8, help="requests per set")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=8)
    args = ap.parse_args()

    sets = build_sets(limit=args.limit)
    prompts = {name: [p.text for p in items] for name, items in sets.sets.items()}
    reader = open_reader(args.model, None)
    reader.model  # noqa: B018  (load the weights before timing)
    timings: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
    stores: dict[bool, ActivationStore] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for share in (True, False) if r % 2 == 0 else (False, True):
                store = ActivationStore(Path(tmp) / f"{share}-{r}")
                wall, cpu = time.perf_counter(), time.process_time()
                capture(reader, prompts, store, key={}, batch_size=args.batch_size, share_prefix=share)
                timings[share].append((time.perf_counter() - wall, time.process_time() - cpu))
                stores[share] = store
        worst = 0.0
        for name in prompts:
            a, b = stores[True].read(name), stores[False].read(name)  # [n, L+1, d]
            scale = np.abs(b).max(axis=(0, 2), keepdims=True)
            worst = max(worst, float((np.abs(a - b) / scale).max()))
    sizes = ", ".join(f"{n} {len(t)}" for n, t in prompts.items())
    print(f"{args.model}, prompts per set: {sizes}; batch size {args.batch_size}; {args.rounds} rounds, alternating")
    tokens = {share: tokens_run(reader, prompts, share) for share in (True, False)}
    for share, label in ((False, "whole prompts"), (True, "prefix cache")):
        wall = np.median([w for w, _ in timings[share]])
        cpu = np.median([c for _, c in timings[share]])
        print(f"  {label:14s} {tokens[share]:>7d} tokens run  {wall:8.1f} s wall  {cpu:8.1f} s CPU (median)")
    wall_ratio = np.median([w for w, _ in timings[True]]) / np.median([w for w, _ in timings[False]])
    cpu_ratio = np.median([c for _, c in timings[True]]) / np.median([c for _, c in timings[False]])
    print(
        f"prefix cache / whole prompts: tokens {tokens[True] / tokens[False]:.3f}, wall {wall_ratio:.3f}, "
        f"CPU {cpu_ratio:.3f}; largest activation difference {worst:.1e} of the layer's largest value"
    )


if __name__ == "__main__":
    main()
