"""Replies of an endpoint that attacks its client, for the scripted server (`server.script(name, fn)`).

`escaping_code` answers a HumanEval prompt with code that tries to get out of the sandbox it runs in: it
writes files outside its own directory, forks a child that lingers (its command line carries `token`, so a
test can look for it in /proc; after a minute it writes `marker`) and phones home over TCP. The payload
is harmless: what it writes is a line of text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from dilemmakit.testing.scripted_server import Script

_LINGER = "import sys, time; time.sleep(60); open(sys.argv[1], 'w').write('the child outlived its sandbox')"


def escaping_program(
    entry_point: str, *, writes: Sequence[str], marker: str, token: str, phone_home: tuple[str, int], spin: bool
) -> str:
    """The code (a module defining `entry_point`) whose effects a sandbox must contain; `spin` makes it
    run until it is killed."""
    host, port = phone_home
    lines = [
        "import posix, socket, sys",
        "",
        f"def {entry_point}(*args, **kwargs):",
        "    return None",
        "",
        f"for path in {list(writes)!r}:",
        "    try:",
        "        with open(path, 'w') as fh:",
        "            fh.write('written from inside the sandbox')",
        "    except OSError:",
        "        pass",
        "if posix.fork() == 0:  # posix.fork, not os.fork: the reliability guard does not stop it",
        f"    posix.execv(sys.executable, [sys.executable, '-c', {_LINGER!r}, {marker!r}, {token!r}])",
        "try:",
        f"    with socket.create_connection(({host!r}, {port}), timeout=3) as conn:",
        f"        conn.sendall(b'GET /v1/models?from={token} HTTP/1.0\\r\\n\\r\\n')",
        "        conn.recv(100)",
        "except OSError:",
        "    pass",
    ]
    if spin:
        lines += ["while True:", "    pass"]
    return "\n".join(lines) + "\n"


def escaping_code(
    *, writes: Sequence[str], marker: str, token: str, phone_home: tuple[str, int], spin_on: Sequence[str] = ()
) -> Script:
    """A target that answers every HumanEval prompt with `escaping_program` in a python block (one that runs
    until killed for the functions named in `spin_on`)."""

    def fn(messages: list[dict]) -> str:
        entry_point = re.findall(r"^def\s+(\w+)\s*\(", messages[-1]["content"], flags=re.M)[-1]
        program = escaping_program(
            entry_point, writes=writes, marker=marker, token=token, phone_home=phone_home, spin=entry_point in spin_on
        )
        return f"```python\n{program}```"

    return fn
