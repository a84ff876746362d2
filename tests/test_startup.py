"""Commands that load no model start without importing torch or transformers (seconds of start-up each)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.helpers import REPO, patience
from tests.report_data import add_artefacts, make_run

HEAVY = ("torch", "transformers")

# Runs `dilemma ARGS...` in-process, then prints which heavy modules it imported as the last stdout line.
PROBE = """
import json, sys
from dilemmakit.cli.main import run
try:
    run(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
print(json.dumps({"exit": code, "heavy": [m for m in HEAVY if m in sys.modules]}))
""".replace("HEAVY", repr(HEAVY))


def heavy_imports(*args: str) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *map(str, args)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200"},
        timeout=patience(120),
    )
    lines = proc.stdout.strip().splitlines()
    assert lines, f"dilemma {' '.join(args)} printed nothing (exit {proc.returncode}):\n{proc.stderr[-2000:]}"
    return json.loads(lines[-1])


def test_importing_the_cli_does_not_import_torch():
    code = f"import sys, dilemmakit.cli.main; print([m for m in {HEAVY!r} if m in sys.modules])"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert proc.stdout.strip() == "[]", proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    from dilemmakit.testing import ScriptedServer

    path = tmp_path_factory.mktemp("startup") / "run"
    with ScriptedServer() as server:
        make_run(server, path)
    add_artefacts(path)
    return path


@pytest.mark.parametrize(
    "command",
    [
        ["--help"],
        ["attack", "--help"],
        ["summary", "--run-dir", "{run}"],
        ["export", "--run-dir", "{run}", "--out", "{tmp}/export.jsonl"],
        ["report", "--run-dir", "{run}", "--out", "{tmp}/report.html"],
    ],
    ids=lambda c: " ".join(c[:1]),
)
def test_commands_without_a_model_do_not_import_torch(command, run_dir, tmp_path):
    args = [a.format(run=run_dir, tmp=tmp_path) for a in command]
    result = heavy_imports(*args)
    assert result["exit"] in (0, None), result
    assert result["heavy"] == [], f"dilemma {' '.join(command)} imported {result['heavy']}"
    if command[0] == "report":
        assert (tmp_path / "report.html").stat().st_size > 1000  # the command really ran


def test_a_local_spec_still_loads_torch_when_it_needs_it():
    """The check can fail: a command that parses a local model spec for loading imports torch."""
    code = "import sys; from dilemmakit.loading.weights import resolve_device; resolve_device('cpu'); print('torch' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert proc.stdout.strip() == "True"
