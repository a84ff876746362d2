"""Utility: does the target still solve ordinary tasks? GSM8K (exact match on the final number) and
HumanEval (pass@1, greedy; opt-in with `allow_code_execution`: the tests run in a bubblewrap sandbox,
`dilemmakit.eval.sandbox`, under a time and memory limit)."""

from __future__ import annotations

import asyncio
import os
import re
import sys
import tempfile

from dilemmakit import resources
from dilemmakit.config import Config, option
from dilemmakit.errors import UserError
from dilemmakit.eval.itemrun import Item, first_error, run_eval
from dilemmakit.eval.sandbox import Sandbox, find_sandbox
from dilemmakit.loading import ModelPool, pool_scope, target_identity
from dilemmakit.models.spec import parse_spec
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


# Runs first in the sandboxed child: limits apply to the tested code (a memory blow-up or endless loop is a
# fail), then HumanEval's reliability guard takes away what a test never needs (processes, signals, deleting
# files, changing directory). The guard is a second layer that keeps honest mistakes from doing damage; the
# sandbox around it is what holds against hostile code (`posix.fork`, `ctypes` and friends get past any guard).
_LIMITED_RUN = """\
import builtins, faulthandler, os, resource, runpy, shutil, subprocess, sys
mem, cpu, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
resource.setrlimit(resource.RLIMIT_DATA, (mem, mem))
resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
faulthandler.disable()
builtins.exit = builtins.quit = None
os.environ["OMP_NUM_THREADS"] = "1"
for name in (
    "kill killpg system putenv remove removedirs rmdir fchdir setuid fork forkpty rename renames truncate "
    "replace unlink fchmod fchown chmod chown chroot lchflags lchmod lchown chdir getcwd execv execve "
    "execvp execvpe spawnv spawnve spawnvp spawnvpe popen posix_spawn posix_spawnp"
).split():
    setattr(os, name, None)
shutil.rmtree = shutil.move = shutil.chown = None
subprocess.Popen = None
for name in ("ipdb", "joblib", "resource", "psutil", "tkinter"):
    sys.modules[name] = None
runpy.run_path(path, run_name="__main__")
"""


def run_tests(
    code: str, problem: dict, *, sandbox: Sandbox, timeout_s: float = 10.0, memory_mb: int = 1024
) -> tuple[bool, str]:
    """(passed, why) for one HumanEval completion, run in `sandbox` (see `dilemmakit.eval.sandbox`)."""
    program = f"{code}\n\n{problem['test']}\n\ncheck({problem['entry_point']})\n"
    with tempfile.TemporaryDirectory(prefix="dilemma-humaneval-") as tmp:
        path = os.path.join(tmp, "solution.py")
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(program)
        limits = [str(memory_mb * 2**20), str(int(timeout_s) + 1), path]
        done = sandbox.run(
            [sys.executable, "-I", "-c", _LIMITED_RUN, *limits], visible=[tmp], workdir=tmp, timeout_s=timeout_s
        )
    if done.timed_out:
        return False, "timeout"
    if done.returncode == 0:
        return True, "passed"
    last = (done.stderr.strip().splitlines() or [f"failed (exit {done.returncode})"])[-1]
    return False, last[:300]


class UtilityConfig(Config):
    target: str = option(help="Model spec")
    bench: str = option("gsm8k", "gsm8k | humaneval")
    limit: int | None = option(50, "First N problems", ge=1)
    max_tokens: int | None = option(None, "Reply length (default 256 gsm8k, 384 humaneval)", ge=1)
    concurrency: int = option(16, "Problems in flight", ge=1)
    timeout_s: float = option(10.0, "HumanEval: seconds per test run", flag="timeout")
    memory_mb: int = option(1024, cli=False)
    allow_code_execution: bool = option(
        False, "HumanEval: run the model's code (in a bubblewrap sandbox: no network, read-only files)"
    )

    def check(self) -> None:
        if self.bench not in BENCHES:
            raise UserError(f"unknown bench {self.bench!r}: use gsm8k or humaneval")
        parse_spec(self.target)
        if self.bench == "humaneval":
            if not self.allow_code_execution:
                raise UserError(
                    "humaneval runs code the model wrote on this machine: rerun with --allow-code-execution to run "
                    "it in a sandbox (bubblewrap: no network, read-only files, killed at --timeout)"
                )
            find_sandbox()  # no sandbox here: one line, before any model call

    @property
    def tokens(self) -> int:
        return self.max_tokens or (256 if self.bench == "gsm8k" else 384)

    def identity(self) -> dict:
        """What names the eval: the target as stored runs name it (`target_identity`), and the settings."""
        return {
            **target_identity(self.target),
            "bench": self.bench,
            "max_tokens": self.tokens,
        }


async def run_utility(
    config: UtilityConfig, store: RunStore, *, pool: ModelPool | None = None, show_progress: bool = True
) -> dict:
    config.check()
    items = (gsm8k_items() if config.bench == "gsm8k" else humaneval_items())[: config.limit]
    sandbox = find_sandbox() if config.bench == "humaneval" else None
    async with pool_scope(pool, concurrency=config.concurrency) as pool:
        target = pool.get(config.target)
        await pool.check_all()

        async def grade(item: Item, reply: str):
            if config.bench == "gsm8k":
                ok = gsm8k_correct(reply, item.data["gold"])
                return ("pass" if ok else "fail"), float(ok), {"gold": item.data["gold"], "got": final_number(reply)}
            assert sandbox is not None
            ok, why = await asyncio.to_thread(
                run_tests,
                extract_code(reply, item.data),
                item.data,
                sandbox=sandbox,
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
