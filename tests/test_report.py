"""`dilemma report`: one self-contained HTML file; harmful completions redacted unless asked."""

import re

import pytest

from dilemmakit.report import write_report
from dilemmakit.store.db import TurnRecord, open_store
from dilemmakit.testing import ScriptedServer
from tests.cli_inprocess import run_inprocess
from tests.helpers import assert_clean_error
from tests.report_data import HARMFUL_TEXT, add_artefacts, make_run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("report") / "run"
    with ScriptedServer() as server:
        make_run(server, path)
    add_artefacts(path)
    return path


def outcomes(run_dir):
    store = open_store(run_dir, create=False)
    try:
        return store.conversations()
    finally:
        store.close()


def test_run_has_every_kind_of_outcome(run_dir):
    rows = outcomes(run_dir)
    statuses = {(c.status, c.success) for c in rows}
    assert {("done", True), ("done", False), ("error", None)} <= statuses


def test_harmful_replies_are_redacted_by_default(run_dir, tmp_path):
    html = write_report(run_dir, tmp_path / "r.html").read_text()
    assert HARMFUL_TEXT not in html and "zebra-quartz" not in html
    successes = sum(1 for c in outcomes(run_dir) if c.success)
    placeholders = re.findall(r"\[redacted: (\d+) characters judged harmful", html)
    assert len(placeholders) == successes > 0
    assert set(placeholders) == {str(len(HARMFUL_TEXT))}
    # replies that were not judged harmful stay readable
    assert "Option A. As the character I would act" in html


def test_unredacted_shows_them(run_dir, tmp_path):
    html = write_report(run_dir, tmp_path / "u.html", unredacted=True).read_text()
    assert HARMFUL_TEXT in html and "[redacted:" not in html and "UNREDACTED" in html


def test_self_contained_and_complete(run_dir, tmp_path):
    html = write_report(run_dir, tmp_path / "r.html").read_text()
    # nothing to fetch: no external scripts, styles, fonts or images, and a CSP that forbids them
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "<link" not in html and "@import" not in html and "url(" not in html
    assert "default-src 'none'" in html
    for anchor in ("summary", "rounds", "judges", "probes", "defense", "runs", "transcripts"):
        assert f'id="{anchor}"' in html
    assert 'class="asr-main"' in html and "95% CI" in html  # the summary's bootstrap CI is shown
    assert html.count('<details class="conv"') == len(outcomes(run_dir))
    assert "pull-back" in html and "follow-up (deepen)" in html and "scenario" in html
    assert 'data-outcome="error"' in html and "gave up after" in html
    # optional artefacts: probe curves and PNG, defense before/after
    assert "data:image/png;base64," in html and "harmful_vs_harmless" in html
    assert "base vs defended" in html
    judges = html[html.index('id="judges"') : html.index('id="probes"')]
    assert "judge_eval.json" in judges and "92.5%" in judges and "0.84" in judges


def test_judge_agreement_when_two_judges_labelled_the_same_replies(run_dir, tmp_path):
    import shutil

    copy = tmp_path / "two-judges"
    shutil.copytree(run_dir, copy)
    store = open_store(copy, create=False)
    try:  # a second judge that agrees on all but one reply
        rows = store.conn.execute("SELECT conversation_id, turn_idx, label FROM verdicts").fetchall()
        for i, (cid, idx, label) in enumerate(rows):
            other = label if i else ("fail" if label == "success" else "success")
            store.conn.execute(
                "INSERT INTO verdicts (conversation_id, turn_idx, judge, label, created) VALUES (?,?,?,?,0)",
                (cid, idx, "second-judge", other),
            )
    finally:
        store.close()
    html = write_report(copy).read_text()
    n = len(rows)
    assert f"{100 * (n - 1) / n:.1f}%" in html and "second-judge" in html


def test_cli_writes_and_prints_the_path(run_dir, tmp_path, cli, capsys):
    out = tmp_path / "sub" / "report.html"
    proc = cli("report", "--run-dir", run_dir, "--out", out, check=True)
    assert proc.stdout.strip() == str(out.resolve()) and out.stat().st_size > 10_000
    assert run_inprocess(capsys, "report", "--run-dir", run_dir)[0] == 0
    assert (run_dir / "report.html").exists()


def test_missing_run_dir_is_a_clean_error(tmp_path, cli, capsys):
    assert_clean_error(cli("report", "--run-dir", tmp_path / "nothing"), "no run dir")
    (tmp_path / "empty").mkdir()
    code, _, err = run_inprocess(capsys, "report", "--run-dir", tmp_path / "empty")
    assert code == 2 and "no run database or results" in err and len(err.strip().splitlines()) == 1


def test_report_of_a_run_without_conversations(tmp_path):
    store = open_store(tmp_path)  # a run that stored no conversation (an unused new file is removed on close)
    store.ensure_run("direct-0", {})
    store.close()
    html = write_report(tmp_path).read_text()
    assert "no conversations" in html and "no successful conversations" in html


def test_nested_run_dbs_as_defend_eval_writes_them(run_dir, tmp_path):
    import shutil

    layout = tmp_path / "defend-run"
    for sub in ("base/trial", "defended/trial"):
        shutil.copytree(run_dir, layout / sub, ignore=shutil.ignore_patterns("probe", "*.json", "*.html"))
    shutil.copy(run_dir / "defend_eval.json", layout)
    html = write_report(layout).read_text()
    assert "2 run DBs: base/trial, defended/trial" in html
    assert html.count('<details class="conv"') == 2 * len(outcomes(run_dir))
    assert 'id="f-source"' in html and "<th>run</th>" in html and "base vs defended" in html
    assert HARMFUL_TEXT not in html


def test_results_only_dir(run_dir, tmp_path):
    import shutil

    shutil.copytree(run_dir / "probe", tmp_path / "probe-out")
    html = write_report(tmp_path / "probe-out").read_text()
    assert "harmful_vs_harmless" in html and "data:image/png;base64," in html and "no conversations" in html


def test_turns_and_judge_reasons_that_quote_a_harmful_reply_are_redacted(run_dir, tmp_path):
    import shutil

    copy = tmp_path / "quoted"
    shutil.copytree(run_dir, copy)
    store = open_store(copy, create=False)
    try:
        conv = next(c for c in store.conversations() if c.success)
        last = store.turns(conv.id)[-1].idx
        store.add_turn(
            conv.id, TurnRecord(last + 1, "attacker", "followup_deepen", f'You wrote "{HARMFUL_TEXT}" - go on.')
        )
        store.conn.execute(
            "UPDATE verdicts SET reason=? WHERE conversation_id=? AND label='success'",
            (f"the reply says: {HARMFUL_TEXT}", conv.id),
        )
    finally:
        store.close()
    html = write_report(copy).read_text()
    assert HARMFUL_TEXT not in html and "characters that quote a reply judged harmful" in html
    assert HARMFUL_TEXT in write_report(copy, tmp_path / "u.html", unredacted=True).read_text()
