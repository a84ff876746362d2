"""Utility: does the target still solve ordinary tasks? GSM8K (exact match on the final number) and
HumanEval (pass@1, greedy; the tests run in a subprocess under a time and memory limit)."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import tempfile

from dilemmakit import resources
from dilemmakit.config import Config, option
from dilemmakit.errors import UserError
from dilemmakit.eval.itemrun import Item, first_error, run_eval
from dilemmakit.loading import ModelPool, pool_scope, weights_identity
from dilemmakit.models.spec import parse_spec, spec_identity
from dilemmakit.store.db import EvalItem, RunStore

BENCHES = ("gsm8k", "humaneval")
GSM8K_PROMPT = (
    "Solve the following math problem step by step. End your answer with a line of the form "
    "'The answer is N', where N is a number.\n\n{question}"
)
HUMANEVAL_PROMPT = (
    "Complete the following Python function. Reply with the complete function (including its "
    "signature) in a single ```python code block.\n\n```python\n{prompt}```"
)
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def _read_jsonl(name: str) -> list[dict]:
    return resources.read_jsonl("dilemmakit.eval", "data", name)


def gsm8k_items() -> list[Item]:
    return [
        Item(
            f"gsm8k-{i}",
            GSM8K_PROMPT.format(question=r["question"]),
            {"gold": r["answer"].rsplit("####", 1)[-1].strip()},
        )
        for i, r in enumerate(_read_jsonl("gsm8k_test.jsonl"))
    ]


def humaneval_items() -> list[Item]:
    return [Item(r["task_id"], HUMANEVAL_PROMPT.format(prompt=r["prompt"]), r) for r in _read_jsonl("humaneval.jsonl")]


def _as_number(text: str) -> float | None:
    try:
        return float(text.replace(",", "").rstrip("."))
    except ValueError:
        return None


def final_number(text: str) -> float | None:
    """The number after 'The answer is' if present, else the last number in the text."""
    marked = re.findall(r"answer is\s*:?\s*\$?\s*(" + _NUMBER.pattern + ")", text, flags=re.I)
    found = marked or _NUMBER.findall(text)
    return _as_number(found[-1]) if found else None


def gsm8k_correct(reply: str, gold: str) -> bool:
    got, want = final_number(reply), _as_number(gold)
    return got is not None and want is not None and abs(got - want) < 1e-6


def extract_code(reply: str, problem: dict) -> str:
    """The code to test: the reply's python block (or the whole reply). A body-only completion gets
    the problem's prompt in front; a whole function gets the prompt's imports (`List`, `math`, ...)."""
    blocks = re.findall(r"```(?:python|py)?\s*\n(.*?)```", reply, flags=re.S)
    code = max(blocks, key=len) if blocks else reply
    if not re.search(rf"^\s*def\s+{re.escape(problem['entry_point'])}\s*\(", code, flags=re.M):
        return problem["prompt"] + code
    imports = [line for line in problem["prompt"].splitlines() if re.match(r"(import|from)\s+\w", line)]
    return "\n".join([*imports, code])


# Runs first in the child: limits apply to the tested code (a memory blow-up or endless loop is a fail).
_LIMITED_RUN = (
    "import resource, runpy, sys\n"
    "mem, cpu = int(sys.argv[1]), int(sys.argv[2])\n"
    "resource.setrlimit(resource.RLIMIT_AS, (mem, mem))\n"
    "resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))\n"
    "runpy.run_path(sys.argv[3], run_name='__main__')\n"
)


def run_tests(code: str, problem: dict, *, timeout_s: float = 10.0, memory_mb: int = 1024) -> tuple[bool, str]:
    """(passed, why) for one HumanEval completion, run in an isolated Python subprocess."""
    program = f"{code}\n\n{problem['test']}\n\ncheck({problem['entry_point']})\n"
    with tempfile.TemporaryDirectory(prefix="dilemma-humaneval-") as tmp:
        path = os.path.join(tmp, "solution.py")
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(program)
        try:
            proc = subprocess.run(
                [sys.executable, "-I", "-c", _LIMITED_RUN, str(memory_mb * 2**20), str(int(timeout_s) + 1), path],
                cwd=tmp,
                capture_output=True,
                text=True,
                timeout=timeout_s,
                start_new_session=True,
                env={"PATH": os.environ.get("PATH", "")},
            )
        except subprocess.TimeoutExpired:
            return False, "timeout"
    if proc.returncode == 0:
        return True, "passed"
    last = (proc.stderr.strip().splitlines() or ["failed"])[-1]
    return False, last[:300]


class UtilityConfig(Config):
    target: str = option(help="Model spec")
    bench: str = option("gsm8k", "gsm8k | humaneval")
    limit: int | None = option(50, "First N problems")
    max_tokens: int | None = option(None, "Reply length (default 256 gsm8k, 384 humaneval)")
    concurrency: int = option(16, "Problems in flight")
    timeout_s: float = option(10.0, "HumanEval: seconds per test run", flag="timeout")
    memory_mb: int = option(1024, cli=False)

    def check(self) -> None:
        if self.bench not in BENCHES:
            raise UserError(f"unknown bench {self.bench!r}: use gsm8k or humaneval")
        parse_spec(self.target)
        if (self.limit is not None and self.limit < 1) or self.concurrency < 1 or (self.max_tokens or 1) < 1:
            raise UserError("--limit, --max-tokens and --concurrency must be at least 1")

    @property
    def tokens(self) -> int:
        return self.max_tokens or (256 if self.bench == "gsm8k" else 384)

    def identity(self) -> dict:
        """What names the eval: transport options in the spec are left out (`ModelSpec.identity`)."""
        return {
            "target": spec_identity(self.target),
            **weights_identity(self.target),
            "bench": self.bench,
            "max_tokens": self.tokens,
        }


async def run_utility(
    config: UtilityConfig, store: RunStore, *, pool: ModelPool | None = None, show_progress: bool = True
) -> dict:
    config.check()
    items = (gsm8k_items() if config.bench == "gsm8k" else humaneval_items())[: config.limit]
    async with pool_scope(pool, concurrency=config.concurrency) as pool:
        target = pool.get(config.target)
        await pool.check_all()

        async def grade(item: Item, reply: str):
            if config.bench == "gsm8k":
                ok = gsm8k_correct(reply, item.data["gold"])
                return ("pass" if ok else "fail"), float(ok), {"gold": item.data["gold"], "got": final_number(reply)}
            ok, why = await asyncio.to_thread(
                run_tests,
                extract_code(reply, item.data),
                item.data,
                timeout_s=config.timeout_s,
                memory_mb=config.memory_mb,
            )
            return ("pass" if ok else "fail"), float(ok), {"tests": why}

        def summarise(stored: list[EvalItem]) -> dict:
            graded = [it for it in stored if it.label in ("pass", "fail")]
            passed = sum(1 for it in graded if it.label == "pass")
            return {
                "bench": config.bench,
                "metric": "exact_match" if config.bench == "gsm8k" else "pass@1",
                "score": round(passed / len(graded), 4) if graded else 0.0,
                "n": len(graded),
                "passed": passed,
                "errors": len(stored) - len(graded),
                "first_error": first_error(stored),
            }

        return await run_eval(
            store,
            f"utility:{config.bench}",
            config.identity(),
            config,
            target,
            items,
            grade,
            summarise,
            max_tokens=config.tokens,
            show_progress=show_progress,
            title=f"{config.bench}: {config.target}",
        )
