"""Running untrusted code (a model's HumanEval completion) in a bubblewrap sandbox.

Each run gets no network (its own, empty network namespace), a read-only view of the root file system
with private, empty `/tmp`, `/run`, `/var/tmp` and home directories (so neither sockets nor the user's
files are in reach), its own PID namespace (when the program ends or the timeout kills the sandbox, the
kernel kills every process it forked) and no capabilities. Only Python's installation and the program's
own directory are mounted back in, read-only.

Where bubblewrap is missing or cannot start a sandbox here, `find_sandbox` raises a UserError: nothing
runs unsandboxed.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from dilemmakit.errors import UserError

INSTALL_HINT = "install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap; `make setup` does it)"
# Hidden behind empty tmpfs mounts: scratch space, sockets (a read-only mount still lets a process connect to
# a unix socket, e.g. Docker's) and the users' files (keys, tokens, .env files).
_HIDDEN = ("/tmp", "/var/tmp", "/run", "/home", "/root")
# Tried in order: a user namespace whose only user is `nobody` (works unprivileged where the kernel allows
# it), then none (root, or a setuid bwrap). Either way the sandbox holds no capabilities.
_ISOLATIONS: tuple[tuple[str, ...], ...] = (
    ("--unshare-user", "--uid", "65534", "--gid", "65534"),
    (),
)


@dataclass(frozen=True)
class Finished:
    returncode: int
    stdout: str
    stderr: str
    timed_out: bool


@dataclass(frozen=True)
class Sandbox:
    bwrap: str
    isolation: tuple[str, ...]

    def command(self, argv: Sequence[str], *, visible: Sequence[str] = (), workdir: str | None = None) -> list[str]:
        """The bwrap command line running `argv` with `visible` paths (and Python's installation) read-only."""
        args = [self.bwrap, *self.isolation, "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev"]
        for path in _HIDDEN:
            if os.path.isdir(path) and not os.path.islink(path):
                args += ["--tmpfs", path]
        for path in dict.fromkeys([*_python_paths(), *visible]):  # after the tmpfs mounts, so they show through
            args += ["--ro-bind", path, path]
        args += [
            "--unshare-net",
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-uts",
            "--die-with-parent",
            "--new-session",
            "--cap-drop",
            "ALL",
        ]
        if workdir is not None:
            args += ["--chdir", workdir]
        return [*args, "--", *argv]

    def run(
        self,
        argv: Sequence[str],
        *,
        visible: Sequence[str] = (),
        workdir: str | None = None,
        timeout_s: float,
        env: dict[str, str] | None = None,
    ) -> Finished:
        """Run `argv` in the sandbox; at the timeout the sandbox and everything in it is killed."""
        proc = subprocess.Popen(
            self.command(argv, visible=visible, workdir=workdir),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            start_new_session=True,
            env=env if env is not None else {"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        )
        timed_out = False
        try:
            stdout, stderr = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill_group(proc.pid)  # bwrap dies; --die-with-parent then ends its PID namespace, and with it all
            stdout, stderr = proc.communicate()
        finally:
            _kill_group(proc.pid)
        return Finished(proc.returncode, stdout, stderr, timed_out)


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _python_paths() -> list[str]:
    """What the sandboxed interpreter needs to start: its installation and the environment's prefix."""
    paths = {sys.prefix, sys.base_prefix, os.path.dirname(os.path.realpath(sys.executable))}
    return sorted(p for p in paths if os.path.isdir(p))


class SandboxUnavailable(UserError):
    pass


@functools.cache
def _probe() -> Sandbox | str:
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return f"bubblewrap (bwrap) is not installed: {INSTALL_HINT}"
    failure = "no output"
    for isolation in _ISOLATIONS:
        sandbox = Sandbox(bwrap, isolation)
        try:
            done = sandbox.run([sys.executable, "-I", "-c", "print('sandboxed')"], timeout_s=30)
        except OSError as exc:
            return f"bubblewrap ({bwrap}) does not start: {exc}"
        if done.returncode == 0 and done.stdout.strip() == "sandboxed":
            return sandbox
        failure = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1][:200]
    return f"bubblewrap cannot start a sandbox here ({failure})"


def find_sandbox() -> Sandbox:
    """A sandbox that has been seen to work on this machine (probed once per process), or SandboxUnavailable
    saying why in one line."""
    found = _probe()
    if isinstance(found, str):
        raise SandboxUnavailable(f"cannot run model-written code: {found}; nothing was run")
    return found
