"""The managed server's lifecycle with a stub executable (tests/scripts/stub_llamacpp_server.py) started the
way the llama.cpp server is: it starts on a free port, answers the existing OpenAI-compatible client, and is
stopped -- with its process group -- on stop(), on a normal exit, on SIGTERM, on Ctrl-C and when its parent
is killed outright. No orphan is left: each pid is checked in /proc afterwards."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from dilemmakit.errors import UserError
from dilemmakit.llamacpp import model as managed
from dilemmakit.llamacpp.server import ManagedServer
from dilemmakit.models.base import GenParams
from dilemmakit.models.openai_compat import OpenAICompatModel
from tests.helpers import REPO, patience

STUB = REPO / "tests" / "scripts" / "stub_llamacpp_server.py"


def stub_argv(*extra: str) -> list[str]:
    return [sys.executable, str(STUB), "--model", "x.gguf", "--host", "127.0.0.1", "--port", "{port}", *extra]


def alive(pid: int) -> bool:
    """Running (a zombie, dead but not yet reaped by whoever inherited it, counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def wait_gone(*pids: int, within: float = 30.0) -> list[int]:
    """The pids still running after `within` seconds (none, if all went)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.1)
    return [p for p in pids if alive(p)]


def read_grandchild(path: Path) -> int:
    deadline = time.monotonic() + 30
    while not (path.exists() and path.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return int(path.read_text())


def test_starts_answers_through_the_client_and_stops_with_its_group(tmp_path):
    pid_file = tmp_path / "grandchild"
    server = ManagedServer(stub_argv("--child", str(pid_file)), name="stub server", start_timeout=60)
    url = server.start()
    pid, grandchild = server.pid, read_grandchild(pid_file)
    assert pid is not None and alive(pid) and alive(grandchild)
    assert url.startswith("http://127.0.0.1:") and url.endswith("/v1")

    async def ask() -> list[str]:
        client = OpenAICompatModel(model="stub", base_url=url, api_key_env="", concurrency=1, stream=True)
        try:
            await client.check()
            replies = await asyncio.gather(
                *(client.generate([{"role": "user", "content": f"hi {i}"}], GenParams()) for i in range(3))
            )
        finally:
            await client.aclose()
        return [r.text for r in replies]

    assert asyncio.run(ask()) == ["echo: hi 0", "echo: hi 1", "echo: hi 2"]
    server.stop()
    assert wait_gone(pid, grandchild) == []
    server.stop()  # twice is harmless


def test_a_server_that_exits_while_starting_is_one_line_with_its_last_output():
    server = ManagedServer(stub_argv("--fail"), name="stub server", start_timeout=60)
    with pytest.raises(UserError, match=r"the stub server exited with code 1 while starting: .*not a GGUF") as caught:
        server.start()
    assert "\n" not in str(caught.value)
    assert server.process is None


def test_a_server_that_never_answers_is_stopped_after_the_start_timeout():
    server = ManagedServer(stub_argv("--hang"), name="stub server", start_timeout=2)
    with pytest.raises(UserError, match=r"did not answer within 2 s"):
        server.start()
    assert server.process is None


PARENT = textwrap.dedent(
    """
    import json, sys, time
    from dilemmakit.llamacpp.server import ManagedServer
    server = ManagedServer({argv!r}, name="stub server", start_timeout=60)
    server.start()
    print(json.dumps({{"pid": server.pid}}), flush=True)
    if {linger!r}:
        time.sleep(3600)
    """
)


def start_parent(tmp_path: Path, *, linger: bool) -> tuple[subprocess.Popen, int, int]:
    """A Python process that starts a managed stub server (which starts a grandchild) and reports its pids."""
    pid_file = tmp_path / "grandchild"
    code = PARENT.format(argv=stub_argv("--child", str(pid_file)), linger=linger)
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=REPO)
    assert parent.stdout is not None
    line = parent.stdout.readline()
    assert line, "the parent did not start the server"
    return parent, json.loads(line)["pid"], read_grandchild(pid_file)


def test_normal_exit_stops_the_server(tmp_path):
    parent, pid, grandchild = start_parent(tmp_path, linger=False)
    assert parent.wait(timeout=patience(60)) == 0
    assert wait_gone(pid, grandchild) == []


@pytest.mark.parametrize(
    ("sig", "exit_code"),
    [(signal.SIGTERM, -signal.SIGTERM), (signal.SIGINT, -signal.SIGINT)],
    ids=["sigterm", "ctrl-c"],
)
def test_a_signal_to_the_parent_stops_the_server(tmp_path, sig, exit_code):
    parent, pid, grandchild = start_parent(tmp_path, linger=True)
    assert alive(pid) and alive(grandchild)
    os.kill(parent.pid, sig)
    assert parent.wait(timeout=patience(60)) == exit_code  # it still dies of the signal, after stopping the server
    assert wait_gone(pid, grandchild) == []


def test_a_killed_parent_leaves_no_server(tmp_path):
    """SIGKILL runs no handler of ours: the kernel's parent-death signal stops the server."""
    parent, pid, grandchild = start_parent(tmp_path, linger=True)
    parent.kill()
    parent.wait(timeout=patience(60))
    assert wait_gone(pid) == []
    if alive(grandchild):  # the stub's own child is the stub's affair (llama.cpp's server starts none)
        os.kill(grandchild, signal.SIGKILL)


def test_real_qwen_without_the_model_or_the_extra_says_how_to_get_them(tmp_path, monkeypatch, capsys):
    from tests.cli_inprocess import run_inprocess

    monkeypatch.setenv("DILEMMA_CACHE_DIR", str(tmp_path / "cache"))
    run_dir = tmp_path / "run"
    args = ("attack", "--target", "real-qwen", "--method", "direct", "--limit", "1", "--run-dir", run_dir)
    code, _, err = run_inprocess(capsys, *args)
    assert code == 2 and "dilemma models install qwen-coder-1.5b" in " ".join(err.split())

    # the model in place (a sparse file of the right size, its provenance), the extra missing
    from dilemmakit.llamacpp.catalog import get_model
    from dilemmakit.llamacpp.install import PROVENANCE_NAME, gguf_path, provenance_record

    qwen = get_model("qwen-coder-1.5b")
    path = gguf_path(qwen)
    path.parent.mkdir(parents=True)
    with path.open("wb") as f:
        f.truncate(qwen.size)
    (path.parent / PROVENANCE_NAME).write_text(json.dumps(provenance_record(qwen, qwen.sha256)))
    monkeypatch.setattr(managed, "extra_installed", lambda: False)
    code, _, err = run_inprocess(capsys, *args)
    assert code == 2 and "make llamacpp" in " ".join(err.split()) and "Traceback" not in err
