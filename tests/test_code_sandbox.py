"""`dilemma utility --bench humaneval` against an endpoint whose code attacks the machine it runs on.

Nothing runs without --allow-code-execution; with it, the code runs in bubblewrap: its writes outside its
own directory never land, the child it forks does not outlive it, and it cannot reach the network. A
control run of the same code without the sandbox shows each of those checks can fail.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from dilemmakit.eval import sandbox as sandbox_module
from dilemmakit.eval.utility import humaneval_items
from dilemmakit.testing.hostile import escaping_code, escaping_program
from tests.cli_inprocess import run_inprocess
from tests.helpers import sandbox_or_skip


def _pids_with(token: str) -> list[int]:
    """Processes whose command line carries `token` (the hostile code's lingering children)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if token.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
    return found


@pytest.fixture
def hostile(server, tmp_path):
    """(token, paths the code tries to write): the target `hostile` answers with escaping code. The paths: one
    under /tmp and one in the Python environment (visible to the sandbox, read-only)."""
    token = f"dilemma-hostile-{uuid.uuid4().hex}"
    writes = [str(tmp_path / "escaped.txt"), os.path.join(sys.prefix, f"{token}.txt")]
    marker = os.path.join(sys.prefix, f"{token}-child.txt")
    host, port = server.base_url.split("//")[1].split("/")[0].split(":")
    server.script(
        "hostile",
        escaping_code(
            writes=writes, marker=marker, token=token, phone_home=(host, int(port)), spin_on=("separate_paren_groups",)
        ),
    )
    yield token, [*writes, marker]
    for pid in _pids_with(token):  # only when a sandbox failed: the children this test's code started
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for path in (*writes, marker):
        Path(path).unlink(missing_ok=True)


def _utility(capsys, server, run_dir, *extra):
    return run_inprocess(
        capsys,
        "utility",
        "--target",
        server.spec("hostile"),
        "--bench",
        "humaneval",
        "--limit",
        "2",
        "--timeout",
        "5",
        "--run-dir",
        run_dir,
        "--json",
        *extra,
    )


def test_humaneval_refuses_to_run_model_code_without_the_flag(capsys, server, hostile, tmp_path):
    code, out, err = _utility(capsys, server, tmp_path / "run")
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "--allow-code-execution" in lines[0] and "sandbox" in lines[0], err
    assert server.requests == [] and not (tmp_path / "run" / "dilemma.sqlite").exists()


def test_hostile_code_stays_in_the_sandbox(capsys, server, hostile, tmp_path):
    sandbox_or_skip()
    token, paths = hostile
    code, out, err = _utility(capsys, server, tmp_path / "run", "--allow-code-execution")
    assert code == 0, err
    result = json.loads(out)
    assert result["n"] == 2 and result["passed"] == 0  # one exited, one spun until the timeout killed it
    assert [p for p in paths if os.path.exists(p)] == []  # no write landed, under /tmp or elsewhere
    assert _pids_with(token) == []  # the forked children died with their sandboxes
    assert not [p for p in server.paths if token in p]  # the phone-home never arrived
    assert len(server.calls("hostile")) == 2


def test_the_same_code_unsandboxed_escapes(server, hostile, tmp_path):
    """The control: run directly, the code writes its files, leaves its child and reaches the server."""
    token, paths = hostile
    host, port = server.base_url.split("//")[1].split("/")[0].split(":")
    program = escaping_program(
        "f", writes=paths[:1], marker=paths[2], token=token, phone_home=(host, int(port)), spin=False
    )
    subprocess.run([sys.executable, "-I", "-c", program], check=True, timeout=60)
    assert os.path.exists(paths[0])
    assert _pids_with(token) != []
    deadline = time.monotonic() + 30
    while not [p for p in server.paths if token in p] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [p for p in server.paths if token in p]


def test_the_timeout_kills_a_spinning_sample_and_its_children(hostile, server):
    sandbox = sandbox_or_skip()
    token, paths = hostile
    host, port = server.base_url.split("//")[1].split("/")[0].split(":")
    program = escaping_program(
        "f", writes=paths[:2], marker=paths[2], token=token, phone_home=(host, int(port)), spin=True
    )
    done = sandbox.run([sys.executable, "-I", "-c", program], timeout_s=3)
    assert done.timed_out
    assert _pids_with(token) == [] and [p for p in paths if os.path.exists(p)] == []


def test_the_reliability_guard_is_a_second_layer():
    sandbox = sandbox_or_skip()
    from dilemmakit.eval.utility import run_tests

    p = humaneval_items()[0].data
    ok, why = run_tests("import os\nos.system('true')\n" + p["prompt"] + p["canonical_solution"], p, sandbox=sandbox)
    assert not ok and "NoneType" in why


def test_no_sandbox_means_nothing_runs(capsys, server, hostile, tmp_path, monkeypatch):
    """bwrap missing, or present but unable to start a sandbox: one line naming why, exit 2, no model call."""
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "bwrap").write_text("#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n")
    (fake / "bwrap").chmod(0o755)
    for path, why in [(str(tmp_path / "empty"), "not installed"), (str(fake), "No permissions")]:
        monkeypatch.setenv("PATH", path)
        sandbox_module._probe.cache_clear()
        try:
            code, out, err = _utility(capsys, server, tmp_path / "run", "--allow-code-execution")
        finally:
            sandbox_module._probe.cache_clear()
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and why in lines[0] and "nothing was run" in lines[0], err
    assert server.requests == []
