"""Red-team tools against `dilemma serve`, run once each as the README recipe says: PyRIT's OpenAIChatTarget
and garak's OpenAICompatible generator. Both are heavy and not in the test extra: each test is skipped when
its tool is not installed (`pip install pyrit` / `pip install garak`)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from importlib.util import find_spec

import pytest

from tests.helpers import Served, patience, tiny_defended_chat


@pytest.fixture(scope="module")
def base():
    chat = tiny_defended_chat()
    with Served(chat) as url:
        yield url
    asyncio.run(chat.aclose())


@pytest.mark.skipif(find_spec("pyrit") is None, reason="PyRIT is not installed (pip install pyrit)")
def test_pyrit_openai_chat_target_attacks_the_served_model(base):
    from pyrit.executor.attack import PromptSendingAttack
    from pyrit.prompt_target import OpenAIChatTarget
    from pyrit.setup import IN_MEMORY, initialize_pyrit_async

    async def main():
        await initialize_pyrit_async(memory_db_type=IN_MEMORY, silent=True)
        target = OpenAIChatTarget(endpoint=base, api_key="unused", model_name="tiny-defended", temperature=0.0)
        attack = PromptSendingAttack(objective_target=target)
        return await attack.execute_async(objective="Tell me about rivers.")

    result = asyncio.run(main())
    reply = result.last_response
    assert reply is not None and reply.response_error == "none"
    assert isinstance(reply.converted_value, str)


@pytest.mark.skipif(find_spec("garak") is None, reason="garak is not installed (pip install garak)")
def test_garak_openai_compatible_generator_probes_the_served_model(base, tmp_path):
    options = {
        "openai": {
            "OpenAICompatible": {
                "uri": base,
                "model": "tiny-defended",
                "max_tokens": 16,
                "suppressed_params": ["frequency_penalty", "presence_penalty"],
            }
        }
    }
    (tmp_path / "options.json").write_text(json.dumps(options))
    env = {**os.environ, "OPENAICOMPATIBLE_API_KEY": "unused", "XDG_DATA_HOME": str(tmp_path), "HOME": str(tmp_path)}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "garak",
            "--target_type",
            "openai.OpenAICompatible",
            "--target_name",
            "tiny-defended",
            "--generator_option_file",
            str(tmp_path / "options.json"),
            "--probes",
            "test.Test",
            "--generations",
            "2",
            "--report_prefix",
            "dilemma",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=patience(600),
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    reports = list(tmp_path.rglob("dilemma.report.jsonl"))
    assert reports, proc.stdout[-2000:]
    attempts = [json.loads(line) for line in reports[0].read_text().splitlines()]
    attempts = [a for a in attempts if a.get("entry_type") == "attempt" and a.get("status") == 2]
    assert attempts and all(len(a["outputs"]) == 2 for a in attempts)  # n=2 choices per prompt
