"""Fixtures only; helpers that tests import by name are in tests/helpers.py."""

import os
import signal

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

from dilemmakit.testing import ScriptedServer
from tests.helpers import run_cli

# A suite started in the background by a non-interactive shell (CI, `nohup ... &`) inherits SIGINT *ignored*,
# and so would every process the tests start: the Ctrl-C tests could then never deliver a Ctrl-C. A Python
# handler here (not SIG_IGN) makes the children start with the default action after exec.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def server():
    with ScriptedServer() as s:
        yield s


@pytest.fixture
def cli():
    return run_cli
