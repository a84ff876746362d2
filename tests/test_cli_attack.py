"""The `dilemma attack/export/summary` commands as a user runs them, against the scripted server."""

import csv
import io
import json
import sqlite3

import pytest

from tests.helpers import COMPLY, OPTION_A, REFUSE, VAGUE, assert_clean_error, target_by_turn
from tests.helpers import attack_args as _attack_args


def attack_args(server, run_dir, *extra):
    return _attack_args(server, run_dir, "--quiet", *extra)


def count_rows(run_dir, table):
    with sqlite3.connect(run_dir / "dilemma.sqlite") as conn:
        return conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


@pytest.fixture
def stored_run(server, tmp_path, cli):
    server.script("target", target_by_turn(OPTION_A, VAGUE, COMPLY))
    proc = cli(*attack_args(server, tmp_path))
    assert proc.returncode == 0, proc.stderr
    return tmp_path


def test_attack_then_summary_and_exports(server, stored_run, cli):
    summary = json.loads(cli("summary", "--run-dir", stored_run, "--json", check=True).stdout)
    assert summary["by_method"]["trial"]["n"] == 3
    assert summary["by_method"]["trial"]["successes"] == 3 and summary["by_method"]["trial"]["asr"] == 1.0

    lines = cli("export", "--run-dir", stored_run, "--format", "jsonl", check=True).stdout.strip().splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == 3
    rec = records[0]
    assert rec["behavior_id"] == "jbb-0000" and rec["method"] == "trial" and rec["success"] is True
    assert rec["rounds"] == 3 and rec["target"].startswith("openai:target@")
    roles = [m["role"] for m in rec["messages"]]
    assert roles[:2] == ["helper", "helper"] and roles.count("assistant") == 3
    assert [v["label"] for v in rec["verdicts"]] == ["success"]

    out = stored_run / "export.csv"
    cli("export", "--run-dir", stored_run, "--format", "csv", "--out", out, check=True)
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert len(rows) == 3 and json.loads(rows[0]["messages"])[0]["stage"] == "clue"

    table = cli("summary", "--run-dir", stored_run, check=True).stdout
    assert "trial" in table and "100.0%" in table


def test_rerunning_the_same_command_resumes_without_new_calls(server, stored_run, cli):
    before = len(server.requests)
    proc = cli(*attack_args(server, stored_run))
    assert proc.returncode == 0, proc.stderr
    assert len(server.requests) == before  # all three conversations were already finished
    assert count_rows(stored_run, "conversations") == 3


def test_bad_inputs_fail_cleanly_and_keep_what_is_stored(server, stored_run, cli, tmp_path_factory):
    turns_before = count_rows(stored_run, "turns")
    bad_dir = tmp_path_factory.mktemp("bad")
    malformed = bad_dir / "rows.jsonl"
    malformed.write_text('{"prompt": "fine"}\n{"prompt": \n')
    columns = bad_dir / "rows.csv"
    columns.write_text("request\nhello\n")
    cases = [
        (attack_args(server, stored_run, "--behaviors", str(bad_dir / "missing.csv")), ["not found"]),
        (["attack", "--target", "gpt4", "--run-dir", stored_run], ["unknown model spec"]),
        (
            ["attack", "--target", "openai:m@http://127.0.0.1:9/v1", "--run-dir", stored_run, "--method", "direct"],
            ["cannot reach"],
        ),
        (attack_args(server, stored_run, "--behaviors", str(malformed)), ["rows.jsonl:2", "malformed json"]),
        (
            attack_args(server, stored_run, "--behaviors", str(columns), "--prompt-column", "prompt"),
            ["no column 'prompt'", "request"],
        ),
        (attack_args(server, stored_run, "--method", "nope"), ["unknown method"]),
        (attack_args(server, stored_run, "--judge", "gpt-judge"), ["unknown judge"]),
        (attack_args(server, stored_run, "--framework", "stoic"), ["unknown framework"]),
        (["summary", "--run-dir", bad_dir / "nothing-here"], ["no run database"]),
        (["export", "--run-dir", stored_run, "--format", "xml"], ["unknown export format"]),
    ]
    for args, needles in cases:
        assert_clean_error(cli(*args), *needles)
    assert count_rows(stored_run, "turns") == turns_before


def test_wrong_api_key_is_one_clear_line_and_never_printed(tmp_path, cli):
    from dilemmakit.testing import ScriptedServer

    with ScriptedServer(api_key="right-key") as secure:
        secure.script("target", target_by_turn(REFUSE))
        proc = cli(
            "attack",
            "--target",
            secure.spec("target"),
            "--method",
            "direct",
            "--run-dir",
            tmp_path,
            "--limit",
            "1",
            "--api-key-env",
            "MY_KEY",
            env={"MY_KEY": "sk-wrong-secret-123"},
        )
        assert_clean_error(proc, "rejected the api key", "$MY_KEY")
        assert "sk-wrong-secret-123" not in proc.stderr + proc.stdout
        proc = cli(
            "attack",
            "--target",
            secure.spec("target"),
            "--method",
            "direct",
            "--run-dir",
            tmp_path,
            "--limit",
            "1",
            "--quiet",
            "--api-key-env",
            "MY_KEY",
            env={"MY_KEY": "right-key"},
        )
        assert proc.returncode == 0, proc.stderr
        assert set(secure.auth_headers) == {"Bearer sk-wrong-secret-123", "Bearer right-key"}
