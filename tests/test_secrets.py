"""API keys never reach logs, the run DB, exports or the report; a wrong key is one clean line."""

import io
import json

import pytest

from dilemmakit.eval.summary import summarise
from dilemmakit.report import write_report
from dilemmakit.store.db import open_store
from dilemmakit.store.export import write_csv, write_jsonl
from dilemmakit.testing import ScriptedServer
from tests.helpers import COMPLY, OPTION_A, VAGUE, assert_clean_error, target_by_turn
from tests.helpers import attack_args as helpers_attack_args

KEY = "sk-dilemma-SECRET-7f3a9c1e5b2d"


@pytest.fixture
def keyed_server():
    with ScriptedServer(api_key=KEY) as server:
        yield server


def attack_args(server, run_dir, *extra):
    return helpers_attack_args(server, run_dir, "--max-rounds", "3", "--concurrency", "1", *extra)


def test_key_is_used_but_never_written_anywhere(keyed_server, tmp_path, cli):
    server = keyed_server
    server.script("target", target_by_turn(OPTION_A, VAGUE, COMPLY))
    server.fail("target", *([500] * 6))  # a conversation that ends in an error message, stored and printed
    run_dir = tmp_path / "run"
    env = {"DILEMMA_TEST_KEY": KEY, "OPENAI_API_KEY": ""}
    outputs = []
    for attempt in range(2):  # the first run leaves an error, the second resumes it
        proc = cli(*attack_args(server, run_dir, "--api-key-env", "DILEMMA_TEST_KEY"), env=env)
        assert proc.returncode == (3 if attempt == 0 else 0), proc.stderr  # 3: finished with failed calls
        outputs += [proc.stdout, proc.stderr]
        store = open_store(run_dir, create=False)
        try:
            for writer in (write_jsonl, write_csv):
                buffer = io.StringIO()
                writer(store, buffer)
                outputs.append(buffer.getvalue())
            outputs.append(json.dumps(summarise(store).as_dict()))
        finally:
            store.close()
        for unredacted in (False, True):
            outputs.append(
                write_report(run_dir, tmp_path / f"r{attempt}{unredacted}.html", unredacted=unredacted).read_text()
            )
    assert f"Bearer {KEY}" in server.auth_headers  # the key was really sent
    proc = cli("report", "--run-dir", run_dir, "--unredacted", env=env, check=True)
    outputs += [proc.stdout, proc.stderr]
    assert "gave up after" in "".join(outputs)  # the error message is in the exports and the report
    for text in outputs:
        assert KEY not in text and "SECRET-7f3a" not in text
    for path in run_dir.iterdir():  # the DB and its WAL/SHM files, byte for byte
        assert KEY.encode() not in path.read_bytes(), path


def test_wrong_key_is_one_clean_line_without_the_key(keyed_server, tmp_path, cli):
    wrong = "sk-wrong-key-0000-SHOULD-NOT-PRINT"
    proc = cli(*attack_args(keyed_server, tmp_path / "run", "--quiet"), env={"OPENAI_API_KEY": wrong})
    assert_clean_error(proc, "api key")
    assert wrong not in proc.stdout + proc.stderr and "OPENAI_API_KEY" in proc.stderr
    assert not keyed_server.requests  # failed at the check, before any conversation


def test_missing_key_is_one_clean_line(keyed_server, tmp_path, cli):
    proc = cli(*attack_args(keyed_server, tmp_path / "run", "--quiet"), env={"OPENAI_API_KEY": ""})
    assert_clean_error(proc, "api key")
