"""Exit codes: 0 when every conversation/item finished, 3 when some ended in failed calls (a rerun retries
them), 2 for user errors; the failed count and the first error in one line. Retries are counted and stored."""

import json

from dilemmakit.calls import CallStats
from dilemmakit.cli.main import EXIT_FAILED_CALLS, EXIT_USER_ERROR
from dilemmakit.store.db import open_store
from tests.cli_inprocess import run_inprocess
from tests.helpers import COMPLY, OPTION_A, VAGUE, target_by_turn


def attack(capsys, server, run_dir, *extra, target=None):
    return run_inprocess(
        capsys,
        "attack",
        "--target",
        target or server.spec("target", max_retries=1),
        "--method",
        "direct",
        "--judge",
        "refusal",
        "--run-dir",
        run_dir,
        "--limit",
        "3",
        "--quiet",
        *extra,
    )


def test_the_failed_calls_code_is_its_own():
    assert EXIT_FAILED_CALLS == 3 and EXIT_FAILED_CALLS != EXIT_USER_ERROR


def test_an_attack_where_every_conversation_failed_exits_3_with_the_first_error(capsys, server, tmp_path):
    server.script("target", lambda messages: "fine")
    server.fail("target", *([500] * 6))  # 3 conversations x 2 attempts
    code, out, err = attack(capsys, server, tmp_path)
    assert code == EXIT_FAILED_CALLS, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: 3 of 3 conversations ended in errors") and "HTTP 500" in last, err
    assert "rerun the same command" in last and "Traceback" not in err
    # the rerun retries them and, now that the server answers, exits 0
    code, out, err = attack(capsys, server, tmp_path)
    assert code == 0, err


def test_some_failed_is_non_zero_too(capsys, server, tmp_path):
    server.script("target", lambda messages: "fine")
    server.fail("target", 500, 500)  # the first conversation's two attempts
    code, _, err = attack(capsys, server, tmp_path, "--concurrency", "1")
    assert code == EXIT_FAILED_CALLS and "1 of 3 conversations" in err


def test_retries_are_shown_at_the_end_and_stored_with_the_run(capsys, server, tmp_path):
    server.script("target", lambda messages: "fine")
    server.fail("target", (429, 0), 503)
    code, _, err = attack(capsys, server, tmp_path, "--concurrency", "1", target=server.spec("target"))
    assert code == 0, err
    assert "retries: 2 (429: 1, 5xx: 1)" in err, err
    store = open_store(tmp_path)
    try:
        ((run_id, _),) = store.runs()
        stats = store.call_stats(run_id)
    finally:
        store.close()
    assert stats == {f"openai:target@{server.base_url}": CallStats(3, 0, {"429": 1, "5xx": 1})}
    # a resume adds its own calls to the run's
    server.fail("target", "reset")
    run_inprocess(
        capsys,
        "attack",
        "--target",
        server.spec("target"),
        "--method",
        "direct",
        "--judge",
        "refusal",
        "--run-dir",
        tmp_path,
        "--limit",
        "4",
        "--quiet",
    )
    store = open_store(tmp_path)
    try:
        stats = store.call_stats(run_id)
    finally:
        store.close()
    assert stats[f"openai:target@{server.base_url}"] == CallStats(4, 0, {"429": 1, "5xx": 1, "connection": 1})


def test_a_clean_attack_exits_0(capsys, server, tmp_path):
    server.script("target", target_by_turn(OPTION_A, VAGUE, COMPLY))
    code, _, err = attack(capsys, server, tmp_path)
    assert code == 0, err
    assert "3/3 finished" in err and "retries: 0;" in err


def test_overrefusal_with_failed_items_exits_3(capsys, server, tmp_path):
    server.script("target", lambda messages: "Sure, here is how.")
    server.fail("target", *([500] * 4))
    code, out, err = run_inprocess(
        capsys,
        "overrefusal",
        "--target",
        server.spec("target", max_retries=1),
        "--limit",
        "3",
        "--concurrency",
        "1",
        "--run-dir",
        tmp_path,
        "--json",
    )
    assert code == EXIT_FAILED_CALLS, err
    assert json.loads(out)["errors"] == 2
    assert "2 of 3 prompts ended in errors" in err and "HTTP 500" in err


def test_utility_with_failed_items_exits_3(capsys, server, tmp_path):
    server.script("target", lambda messages: "The answer is 42.")
    server.fail("target", *([500] * 2))
    code, out, err = run_inprocess(
        capsys,
        "utility",
        "--target",
        server.spec("target", max_retries=1),
        "--bench",
        "gsm8k",
        "--limit",
        "2",
        "--concurrency",
        "1",
        "--run-dir",
        tmp_path,
    )
    assert code == EXIT_FAILED_CALLS, err
    assert "1 of 2 problems ended in errors" in err


def test_judge_eval_with_judge_errors_exits_3(capsys, server):
    server.fail("judge", *([500] * 40))
    code, out, err = run_inprocess(
        capsys,
        "judge-eval",
        "--judge",
        f"jbb:{server.spec('judge', max_retries=0)}",
        "--data",
        "calibration",
        "--limit",
        "2",
        "--json",
    )
    assert code == EXIT_FAILED_CALLS, err
    assert "2 of 2 judged rows ended in errors" in err and "HTTP 500" in err
