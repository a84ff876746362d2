"""A server process this process owns: started on a free 127.0.0.1 port, ready when /v1/models answers, and
stopped with its whole process group when we are done, exit, get SIGTERM or Ctrl-C, or die (no orphan).

    with ManagedServer([sys.executable, "-m", "llama_cpp.server", "--model", path, "--port", "{port}"]) as server:
        server.base_url   # http://127.0.0.1:PORT/v1

The child runs in its own session (so a terminal's Ctrl-C reaches us, and we stop it in order) with
PR_SET_PDEATHSIG, so the kernel ends it even if this process is killed with SIGKILL. Its output goes to
a log file whose last lines are the error message when it fails to start.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

from dilemmakit.errors import UserError

STOP_GRACE_S = 5.0  # SIGTERM, then SIGKILL after this long
POLL_S = 0.2
_LIVE: set[ManagedServer] = set()
_HOOKS_INSTALLED = False
_PR_SET_PDEATHSIG = 1


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ManagedServer:
    def __init__(self, argv: Sequence[str], *, name: str = "server", start_timeout: float = 180.0):
        """`argv` is the command; `{port}` in it becomes the free port chosen at start."""
        self.argv = list(argv)
        self.name = name
        self.start_timeout = start_timeout
        self.port = 0
        self.process: subprocess.Popen | None = None
        self._log_path: Path | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def __enter__(self) -> ManagedServer:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> str:
        """Start the server and wait until it answers; return its base URL. A failure stops it and is one line."""
        if self.process is not None:
            return self.base_url
        _install_hooks()
        self.port = free_port()
        fd, log_name = tempfile.mkstemp(prefix="dilemma-server-", suffix=".log")
        self._log_path = Path(log_name)
        argv = [part.replace("{port}", str(self.port)) for part in self.argv]
        with os.fdopen(fd, "wb") as log:
            try:
                self.process = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    preexec_fn=_die_with_parent if threading.current_thread() is threading.main_thread() else None,
                )
            except OSError as exc:
                self._discard_log()
                raise UserError(f"cannot start the {self.name} ({argv[0]}): {exc.strerror or exc}") from None
        _LIVE.add(self)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self.base_url

    def _wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + self.start_timeout
        with httpx.Client(timeout=5.0) as client:
            while True:
                code = self.process.poll()
                if code is not None:
                    raise UserError(f"the {self.name} exited with code {code} while starting: {self.last_output()}")
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(f"{self.base_url}/models").status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise UserError(
                        f"the {self.name} did not answer within {self.start_timeout:g} s: {self.last_output()}"
                    )
                time.sleep(POLL_S)

    def last_output(self, lines: int = 3) -> str:
        """The server's last output lines, joined into one (for one-line errors)."""
        if self._log_path is None:
            return "(no output)"
        try:
            text = self._log_path.read_bytes()[-8192:].decode("utf-8", "replace")
        except OSError:
            return "(no output)"
        tail = [line.strip() for line in text.splitlines() if line.strip()][-lines:]
        return " | ".join(tail) if tail else "(no output)"

    def stop(self) -> None:
        """Stop the server's process group (SIGTERM, then SIGKILL) and reap it. Safe to call twice."""
        process, self.process = self.process, None
        _LIVE.discard(self)
        if process is not None:
            _stop_group(process)
        self._discard_log()

    def _discard_log(self) -> None:
        if self._log_path is not None:
            with contextlib.suppress(OSError):
                self._log_path.unlink()
            self._log_path = None


def _stop_group(process: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGTERM, STOP_GRACE_S), (signal.SIGKILL, STOP_GRACE_S)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, sig)  # the child leads its own session: its group id is its pid
        try:
            process.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)  # anything the server itself started


def _die_with_parent() -> None:  # runs in the child between fork and exec: no imports, no allocation-heavy work
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM))


try:  # Linux: the kernel signals the child when the thread that started it ends
    _LIBC: ctypes.CDLL | None = ctypes.CDLL(None, use_errno=True) if os.uname().sysname == "Linux" else None
except OSError:  # pragma: no cover
    _LIBC = None


def stop_all() -> None:
    for server in list(_LIVE):
        server.stop()


def _on_sigterm(signum, frame) -> None:
    stop_all()
    previous = _PREVIOUS_SIGTERM
    if previous is signal.SIG_IGN:
        return
    if callable(previous):
        previous(signum, frame)
        return
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


_PREVIOUS_SIGTERM: object = None


def _install_hooks() -> None:
    """atexit (normal exit, Ctrl-C's KeyboardInterrupt) and SIGTERM stop every live server; once per process."""
    global _HOOKS_INSTALLED, _PREVIOUS_SIGTERM
    if _HOOKS_INSTALLED:
        return
    _HOOKS_INSTALLED = True
    atexit.register(stop_all)
    if threading.current_thread() is threading.main_thread():
        _PREVIOUS_SIGTERM = signal.getsignal(signal.SIGTERM)
        signal.signal(signal.SIGTERM, _on_sigterm)
