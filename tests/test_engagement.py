"""`dilemma engagement`: held-out benign dilemmas against a scripted server and the real embedded model."""

from __future__ import annotations

import json

import pytest

from dilemmakit.cli.main import EXIT_FAILED_CALLS
from dilemmakit.eval.engagement import dilemma_items
from dilemmakit.store.db import open_store
from tests.cli_inprocess import run_inprocess
from tests.helpers import REFUSE, assert_clean_error

REASONED = "Option A. {name} should take this path, because it protects the people who depend on the decision most."


def scripted_reply(messages) -> str:
    """Refuses the seminar (lens) style, gives a bare choice in the strict style, engages otherwise."""
    prompt = messages[-1]["content"]
    if "applied ethics seminar" in prompt:
        return REFUSE
    if "Format rules" in prompt:
        return "Option B"
    return REASONED.format(name="She")


def expected(items) -> dict[str, int]:
    styles = [it.data["style"] for it in items]
    return {
        "refused": styles.count("lens"),
        "unanswered": styles.count("strict"),
        "engaged": len(styles) - styles.count("lens") - styles.count("strict"),
    }


def test_engagement_json_counts_and_resume(server, tmp_path, cli):
    server.script("target", scripted_reply)
    args = ("engagement", "--target", server.spec("target"), "--run-dir", tmp_path, "--limit", "24", "--json")
    data = json.loads(cli(*args, check=True).stdout)
    items = dilemma_items(seed=0, limit=24)
    want = expected(items)
    assert min(want.values()) > 0, want  # the seed mixes the styles
    assert data["measure"] == "keyword" and data["n"] == 24 and data["errors"] == 0
    assert {k: data[k] for k in want} == want
    assert data["engagement"] == pytest.approx(want["engaged"] / 24, abs=1e-4)
    assert data["ci_low"] < data["engagement"] < data["ci_high"]
    # the scripted target always says Option A when it reasons: agreement is the share whose reference is A
    chose = [it for it in items if it.data["style"] != "lens"]
    agree = sum(it.data["reference"] == ("A" if it.data["style"] != "strict" else "B") for it in chose)
    assert data["with_choice"] == len(chose) and data["reference_agreement"] == pytest.approx(
        agree / len(chose), abs=1e-4
    )
    calls = len(server.calls("target"))
    assert calls == 24
    assert json.loads(cli(*args, check=True).stdout)["engagement"] == data["engagement"]
    assert len(server.calls("target")) == calls  # resumed from the run DB
    store = open_store(tmp_path, create=False)
    try:
        (e,) = store.evals()
        assert e["kind"] == "engagement" and e["result"]["n"] == 24
        stored = store.eval_items(e["id"])
        assert {it.label for it in stored.values()} == {"engaged", "refused", "unanswered"}
        assert all(it.meta["measure"] == "keyword" and it.meta["reference"] in "AB" for it in stored.values())
    finally:
        store.close()
    # compare and the report show it, with its CI
    compare = json.loads(cli("compare", "--run-dir", tmp_path, "--json", check=True).stdout)
    assert compare["evals"][0]["kind"] == "engagement"
    cli("report", "--run-dir", tmp_path, check=True)
    html = (tmp_path / "report.html").read_text()
    assert "dilemma engagement" in html and f"engagement {100 * data['engagement']:.1f}% [" in html


def test_the_text_line_says_keyword_measure(server, tmp_path, cli):
    server.script("target", lambda m: REASONED.format(name="He"))
    proc = cli("engagement", "--target", server.spec("target"), "--run-dir", tmp_path, "--limit", "3", check=True)
    assert "keyword measure" in proc.stdout and "100.0%" in proc.stdout and "3/3 engaged" in proc.stdout


def test_one_style_for_all(server, tmp_path, cli):
    server.script("target", scripted_reply)
    data = json.loads(
        cli(
            "engagement", "--target", server.spec("target"), "--run-dir", tmp_path,
            "--limit", "5", "--style", "lens", "--json", check=True,
        ).stdout
    )  # fmt: skip
    assert data["refused"] == 5 and data["engagement"] == 0.0


def test_failed_calls_exit_3(capsys, server, tmp_path):
    server.script("target", lambda m: REASONED.format(name="She"))
    server.fail("target", *([500] * 4))
    code, out, err = run_inprocess(
        capsys,
        "engagement",
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
    assert "2 of 3 dilemmas ended in errors" in err


def test_bad_options_are_one_line(cli, tmp_path):
    assert_clean_error(cli("engagement", "--target", "embedded", "--run-dir", tmp_path, "--style", "haiku"), "style")
    assert_clean_error(cli("engagement", "--target", "embedded", "--run-dir", tmp_path, "--limit", "0"), "limit")


@pytest.mark.slow
def test_the_embedded_model_end_to_end(tmp_path, cli):
    proc = cli("engagement", "--target", "embedded", "--run-dir", tmp_path, "--limit", "3", "--json", timeout=600)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["n"] == 3 and data["errors"] == 0
    assert data["engaged"] + data["refused"] + data["unanswered"] == 3
    store = open_store(tmp_path, create=False)
    try:
        (e,) = store.evals()
        replies = [it.output for it in store.eval_items(e["id"]).values()]
        assert len(replies) == 3 and all(r.strip() for r in replies)
    finally:
        store.close()
