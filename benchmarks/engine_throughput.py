"""Embedded-model generation throughput: our engine's weight variants side by side, and llama.cpp on the same GGUF.

Every engine gets the same chat prompts, greedy decoding, the same max new tokens, and stops at EOS;
generated tokens are counted without the EOS. Aggregate tok/s = generated tokens / wall seconds for the
whole batch; tok/CPU-s = generated tokens / CPU seconds of the process that decodes (ours: this one;
llama-server: the server), steadier than wall time on shared cores.

Variants are model specs (`embedded`, `embedded?quant=int8`, `embedded?dtype=bfloat16`), timed in turn
within one run so their ratios share the machine's load. Every variant after the first is also compared
with the first on quality: the share of greedy replies identical to it and the mean next-token KL
(first reply token, full vocabulary) on the prompt set.

llama.cpp, when present: llama-cpp-python's API (one sequence at a time) in a child process with llama.cpp's
own OpenMP settings (this package sets OMP_WAIT_POLICY=PASSIVE for torch, which slows llama.cpp's 2 threads
~4x: 21 vs 79 tok/s measured), and llama.cpp's `llama-server` with one parallel slot per concurrent request
(`--llama-server PATH`, or on PATH).

    .venv/bin/python benchmarks/engine_throughput.py [--variants embedded,embedded?quant=int8]
        [--new-tokens 64] [--batch 32] [--single 4] [--agreement 16]
    .venv/bin/python benchmarks/engine_throughput.py --gguf qwen-coder-1.5b --single 1 --batch 4 --new-tokens 16

`--gguf` takes another GGUF (a path, or a model installed by `dilemma models install`): llama.cpp runs that file,
and our engine its transformers copy (dequantized to float32 once, cached like the embedded model's), so the
real model `real-qwen` is compared engine against engine.
    pip install -e '.[bench]'   # llama-cpp-python (compiles from source: ~20 min on 2 cores)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import dilemmakit  # noqa: F401  (sets the OpenMP wait policy before torch loads)
from dilemmakit.models.base import GenParams

TOPICS = [
    "the sea",
    "a lighthouse",
    "autumn leaves",
    "a busy market",
    "the moon",
    "a mountain village",
    "trains at night",
    "a library",
    "bees",
    "a thunderstorm",
    "old bridges",
    "a chess game",
    "desert stars",
    "a bakery at dawn",
    "glaciers",
    "city parks",
]


def prompts(n: int) -> list[list[dict]]:
    kinds = ["Write a short poem about {}.", "Describe {} in a few sentences."]
    return [[{"role": "user", "content": kinds[i % 2].format(TOPICS[i % len(TOPICS)])}] for i in range(n)]


def timed(fn):
    start, cpu = time.perf_counter(), time.process_time()
    tokens = fn()
    return tokens, time.perf_counter() - start, time.process_time() - cpu


def ours(batch: list[list[dict]], new_tokens: int, engine, together: bool) -> int:
    params = GenParams(temperature=0.0, max_tokens=new_tokens)
    if together:
        return sum(r.completion_tokens for r in engine.generate_batch(batch, params))
    return sum(engine.generate_batch([conv], params)[0].completion_tokens for conv in batch)


def hf_generate(batch, new_tokens: int, engine) -> int:
    params = GenParams(temperature=0.0, max_tokens=new_tokens)
    return sum(r.completion_tokens for r in engine._generate_static(batch, params))


LLAMA_CPP_CHILD = """
import json, sys, time
from llama_cpp import Llama

job = json.loads(sys.argv[1])
llm = Llama(model_path=job["gguf"], n_ctx=2048, n_threads=job["threads"], n_batch=512, verbose=False, seed=0)

def run(batch, new_tokens):
    total = 0
    for conv in batch:
        out = llm.create_chat_completion(messages=conv, max_tokens=new_tokens, temperature=0.0, top_k=1, seed=0)
        total += out["usage"]["completion_tokens"]
    return total

run(job["warmup"], 4)
for batch in job["batches"]:
    start, cpu = time.perf_counter(), time.process_time()
    tokens = run(batch, job["new_tokens"])
    print(json.dumps([tokens, time.perf_counter() - start, time.process_time() - cpu]), flush=True)
"""


def llama_cpp(gguf: Path, batches: list[list[list[dict]]], new_tokens: int) -> list[tuple[int, float, float]] | str:
    """llama-cpp-python on each batch (one sequence at a time) in a fresh process with llama.cpp's default
    OpenMP environment: [(tokens, wall s, CPU s)] per batch, or why it was skipped."""
    import json

    job = {
        "gguf": str(gguf),
        "threads": os.cpu_count(),
        "warmup": prompts(1),
        "batches": batches,
        "new_tokens": new_tokens,
    }
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    proc = subprocess.run(
        [sys.executable, "-c", LLAMA_CPP_CHILD, json.dumps(job)], env=env, capture_output=True, text=True
    )
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        if "No module named 'llama_cpp'" in proc.stderr:
            return "not installed (pip install -e '.[bench]' builds it: ~20 min on 2 cores)"
        return f"cannot run on {gguf.name}: {last}"
    return [tuple(json.loads(line)) for line in proc.stdout.splitlines() if line.startswith("[")]


def report(label: str, tokens: int, wall: float, cpu: float) -> float:
    rate = tokens / wall
    print(
        f"  {label:<40} {tokens:5d} tokens {wall:7.2f} s wall {rate:7.1f} tok/s   {cpu:7.2f} s CPU "
        f"{tokens / max(cpu, 1e-9):7.1f} tok/CPU-s",
        flush=True,
    )
    return rate


# --- quality of a variant against the reference ----------------------------------------------------
def agreement(reference, variant, convs: list[list[dict]], new_tokens: int) -> tuple[float, float]:
    """(share of identical greedy replies, mean KL(reference || variant) of the first reply token)."""
    import torch

    params = GenParams(temperature=0.0, max_tokens=new_tokens)
    same = [
        a.text == b.text
        for a, b in zip(reference.generate_batch(convs, params), variant.generate_batch(convs, params), strict=True)
    ]
    kls = []
    with torch.inference_mode():
        for conv in convs:
            ids = torch.tensor([reference.prompt_ids(conv)])
            p = torch.log_softmax(reference.model(input_ids=ids).logits[0, -1].float(), -1)
            q = torch.log_softmax(variant.model(input_ids=ids).logits[0, -1].float(), -1)
            kls.append(float((p.exp() * (p - q)).sum()))
    return sum(same) / len(same), sum(kls) / len(kls)


# --- llama.cpp's server ------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


class LlamaServer:
    """`llama-server` on the GGUF with `slots` parallel slots, on a free loopback port."""

    def __init__(self, binary: str, gguf: Path, slots: int, new_tokens: int):
        self.port = _free_port()
        ctx = slots * (512 + new_tokens)
        self.proc = subprocess.Popen(
            [binary, "-m", str(gguf), "--port", str(self.port), "-np", str(slots), "-c", str(ctx)]
            + ["-t", str(os.cpu_count()), "--log-disable"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        import httpx

        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(f"llama-server exited with {self.proc.returncode}")
            time.sleep(0.5)
        self.close()
        raise RuntimeError("llama-server did not become ready in 120 s")

    def run(self, batch: list[list[dict]], new_tokens: int) -> tuple[int, float, float]:
        import httpx

        async def one(client, conv) -> int:
            body = {"messages": conv, "max_tokens": new_tokens, "temperature": 0.0, "top_k": 1, "seed": 0}
            r = await client.post(f"http://127.0.0.1:{self.port}/v1/chat/completions", json=body)
            r.raise_for_status()
            return int(r.json()["usage"]["completion_tokens"])

        async def all_of() -> int:
            async with httpx.AsyncClient(timeout=600) as client:
                return sum(await asyncio.gather(*(one(client, c) for c in batch)))

        cpu, start = _cpu_seconds(self.proc.pid), time.perf_counter()
        tokens = asyncio.run(all_of())
        return tokens, time.perf_counter() - start, _cpu_seconds(self.proc.pid) - cpu

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def other_gguf(name: str) -> Path:
    """A GGUF path, or the file of a model installed with `dilemma models install NAME`."""
    if Path(name).is_file():
        return Path(name)
    from dilemmakit.llamacpp.catalog import get_model
    from dilemmakit.llamacpp.install import installed_gguf

    path = installed_gguf(get_model(name))
    if path is None:
        raise SystemExit(f"{name}: not installed (dilemma models install {name})")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default="embedded,embedded?quant=int8", help="comma-separated model specs")
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--single", type=int, default=4, help="prompts run one at a time for the batch-1 numbers")
    parser.add_argument("--agreement", type=int, default=16, help="prompts for the quality comparison (0: skip)")
    parser.add_argument("--with-generate", action="store_true", help="also time transformers generate() batched")
    parser.add_argument("--llama-server", default=shutil.which("llama-server"), help="llama.cpp server binary")
    parser.add_argument(
        "--gguf", help="another GGUF: a path or an installed model's name (default: the embedded model)"
    )
    args = parser.parse_args()

    import torch

    from dilemmakit.engine.batching import BatchingEngine
    from dilemmakit.loading import load_weights
    from dilemmakit.loading.embedded import dequantized_copy, locate_gguf

    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    gguf = locate_gguf() if args.gguf is None else other_gguf(args.gguf)
    variants = args.variants if args.gguf is None else f"hf:{dequantized_copy(gguf)}?dtype=float32"
    engines = {}
    for spec in variants.split(","):
        loaded = load_weights(spec, generation=True)
        # no prefix cache: the same prompts recur across the measurements, and each should be prefilled anew
        engines[spec] = BatchingEngine(loaded.model, loaded.tokenizer, max_batch=args.batch, prefix_cache_mb=0)
    if not args.llama_server:
        print("llama-server: skipped, no llama.cpp server binary on PATH (build llama.cpp or pass --llama-server)")

    single, many = prompts(args.single), prompts(args.batch)
    # llama-cpp-python runs first, alone, in its own process (the engines here are loaded but idle)
    llama_runs = llama_cpp(gguf, [single, many], args.new_tokens)
    if isinstance(llama_runs, str):
        print(f"llama-cpp-python: skipped, {llama_runs}")
        llama_runs = []
    for engine in engines.values():
        ours(prompts(1), 4, engine, True)  # warm-up: first-call allocations
    reference = next(iter(engines))
    rates: dict[tuple[str, int], float] = {}
    for concurrency, batch in ((1, single), (args.batch, many)):
        print(f"concurrency {concurrency} ({len(batch)} prompts, {args.new_tokens} max new tokens, greedy):")
        for spec, engine in engines.items():
            rates[spec, concurrency] = report(
                f"dilemma engine {spec}", *timed(partial(ours, batch, args.new_tokens, engine, concurrency > 1))
            )
        if llama_runs:
            rates["llama-cpp-python", concurrency] = report(
                f"llama-cpp-python ({gguf.name}, own process)", *llama_runs[0 if concurrency == 1 else 1]
            )
        if args.llama_server:
            server = LlamaServer(args.llama_server, gguf, concurrency, args.new_tokens)
            try:
                server.run(prompts(1), 4)  # warm-up
                rates["llama-server", concurrency] = report(
                    f"llama-server -np {concurrency} ({gguf.name})", *server.run(batch, args.new_tokens)
                )
            finally:
                server.close()
        if args.with_generate:
            report(
                "transformers generate()",
                *timed(
                    partial(hf_generate, batch if concurrency > 1 else batch[:1], args.new_tokens, engines[reference])
                ),
            )
    for concurrency in (1, args.batch):
        for other in [*list(engines)[1:], "llama-cpp-python", "llama-server"]:
            if (other, concurrency) in rates:
                ratio = rates[other, concurrency] / rates[reference, concurrency]
                print(f"concurrency {concurrency}: {other} runs at {ratio:.2f}x the tok/s of {reference}")
    if args.agreement:
        convs = prompts(args.agreement)
        for spec in list(engines)[1:]:
            same, kl = agreement(engines[reference], engines[spec], convs, args.new_tokens)
            print(
                f"quality {spec} vs {reference}: {same:.0%} of {len(convs)} greedy replies identical "
                f"({args.new_tokens} tokens), mean next-token KL {kl:.2e}"
            )
    for engine in engines.values():
        engine.close()


if __name__ == "__main__":
    main()
