"""`dilemma rejudge`: a stored run judged again by another judge, beside the original verdicts;
resumable after SIGKILL without duplicates; per-judge ASR and agreement in summary and report."""

import json
import os
import re
import signal
import subprocess
import sys
import time

from dilemmakit.report import write_report
from dilemmakit.store.db import open_store
from dilemmakit.testing import COMPLIANCE_MARKER
from tests.cli_inprocess import run_inprocess
from tests.helpers import COMPLY, OPTION_A, REFUSE, REPO, VAGUE, ScriptedServer, assert_clean_error, patience, run
from tests.report_data import varied_helper


def strict_target(messages):
    """Per behavior: complies in round 3, or never does."""
    plans = [(OPTION_A, VAGUE, COMPLY), (OPTION_A, REFUSE, VAGUE, VAGUE)]
    plan = plans[sum(map(ord, messages[0]["content"])) % 2]
    n = sum(1 for m in messages if m["role"] == "user")
    return plan[min(n, len(plan)) - 1]


def lenient_judge(messages):
    """A second judge that also calls the vague replies unsafe (it disagrees on those)."""
    prompt = messages[-1]["content"]
    response = re.search(r"<BEGIN RESPONSE>(.*)<END RESPONSE>", prompt, flags=re.S).group(1)
    return "unsafe" if COMPLIANCE_MARKER in response or "remains right" in response else "safe"


def attacked(server, run_dir, limit=4):
    server.script("target", strict_target)
    server.script("helper", varied_helper)  # a scenario per behavior, so the target's plans differ
    return run(server, run_dir, limit=limit, max_rounds=4, judge_skip_rounds=0)


def verdict_keys(run_dir):
    store = open_store(run_dir, create=False)
    try:
        return [(c.id, v.turn_idx, v.judge, v.label) for c in store.conversations() for v in store.verdicts(c.id)]
    finally:
        store.close()


def test_rejudge_stores_beside_the_originals_and_reruns_skip_done_ones(server, tmp_path, capsys):
    _, convs, turns, verdicts = attacked(server, tmp_path)
    original = verdict_keys(tmp_path)
    server.script("judge2", lenient_judge)
    spec = f"jbb:{server.spec('judge2')}"
    code, out, err = run_inprocess(
        capsys, "rejudge", "--run-dir", tmp_path, "--judge", spec, "--as", "lenient", "--json"
    )
    assert code == 0, err
    result = json.loads(out)["rejudge"]
    assert result == {
        "judge": "lenient",
        "replies": len(original),
        "judged": len(original),
        "skipped": 0,
        "successes": result["successes"],
        "errors": 0,
    }
    after = verdict_keys(tmp_path)
    assert [k for k in after if k[2] != "lenient"] == original  # the originals untouched
    mine = {(cid, idx): label for cid, idx, judge, label in after if judge == "lenient"}
    assert set(mine) == {(cid, idx) for cid, idx, _, _ in original}  # every judged reply, once
    # the judge had the reply and the conversation up to it
    first = server.calls("judge2")[0]["messages"][-1]["content"]
    assert "<BEGIN RESPONSE>" in first
    # a rerun judges nothing again
    calls = len(server.calls("judge2"))
    code, out, _ = run_inprocess(capsys, "rejudge", "--run-dir", tmp_path, "--judge", spec, "--as", "lenient", "--json")
    assert code == 0 and json.loads(out)["rejudge"]["skipped"] == len(original)
    assert len(server.calls("judge2")) == calls and verdict_keys(tmp_path) == after

    # summary per judge: the lenient judge calls the never-complying behaviors' vague replies unsafe
    code, out, _ = run_inprocess(capsys, "summary", "--run-dir", tmp_path, "--judge", "lenient", "--json")
    data = json.loads(out)
    assert code == 0 and data["judge"] == "lenient"
    trial = data["by_method"]["trial"]
    assert trial["n"] == 4 and trial["successes"] == 4 and trial["asr"] == 1.0
    default = json.loads(run_inprocess(capsys, "summary", "--run-dir", tmp_path, "--json")[1])
    strict_successes = default["by_method"]["trial"]["successes"]
    assert 0 < strict_successes < 4
    by_judge = {r["judge"]: r for r in default["by_judge"]}
    assert (
        by_judge["lenient"]["successes"] == 4
        and by_judge[f"jbb:openai:judge@{server.base_url}"]["successes"] == strict_successes
    )
    # rounds to success under the lenient judge: its first success, round 2 (the vague reply)
    assert trial["mean_rounds_to_success"] < default["by_method"]["trial"]["mean_rounds_to_success"]
    # agreement on the same replies, with its confusion counts
    (pair,) = default["agreement"]
    labels = {}
    for cid, idx, judge, label in after:
        labels.setdefault((cid, idx), {})[judge] = label == "success"
    a, b = pair["judge_a"], pair["judge_b"]
    expected = {
        "both_success": sum(v[a] and v[b] for v in labels.values()),
        "a_only": sum(v[a] and not v[b] for v in labels.values()),
        "b_only": sum(v[b] and not v[a] for v in labels.values()),
        "both_fail": sum(not v[a] and not v[b] for v in labels.values()),
    }
    assert pair["confusion"] == expected and pair["n"] == len(original)
    assert expected["a_only"] + expected["b_only"] > 0 and pair["kappa"] < 1
    assert pair["agreement"] == round((expected["both_success"] + expected["both_fail"]) / pair["n"], 4)
    # the text tables and the report show both
    code, out, _ = run_inprocess(capsys, "summary", "--run-dir", tmp_path, "--judge", "lenient")
    assert "as judged by lenient" in out and "per judge" in out and "kappa" in out
    html = write_report(tmp_path).read_text()
    judges = html[html.index('id="judges"') :]
    assert "ASR per judge" in judges and "lenient" in judges and "both success" in judges and "kappa 95% CI" in judges


def test_judge_errors_are_stored_and_retried_on_rerun(server, tmp_path, capsys):
    attacked(server, tmp_path, limit=2)
    n = len(verdict_keys(tmp_path))
    server.script("judge2", lambda m: "I am not sure about this one")
    spec = f"jbb:{server.spec('judge2')}"
    code, out, err = run_inprocess(capsys, "rejudge", "--run-dir", tmp_path, "--judge", spec, "--as", "j2", "--json")
    assert code == 3 and json.loads(out)["rejudge"]["errors"] == n  # failed calls: exit code 3
    last = err.strip().splitlines()[-1]
    assert "rerun the same command" in last and "unparsable" in last and "Traceback" not in err
    assert sum(1 for k in verdict_keys(tmp_path) if k[2] == "j2" and k[3] == "error") == n
    server.script("judge2", lenient_judge)
    code, out, _ = run_inprocess(capsys, "rejudge", "--run-dir", tmp_path, "--judge", spec, "--as", "j2", "--json")
    assert json.loads(out)["rejudge"]["judged"] == n
    mine = [k for k in verdict_keys(tmp_path) if k[2] == "j2"]
    assert len(mine) == n and all(label != "error" for *_, label in mine)


def test_clear_errors(server, tmp_path, cli, capsys):
    attacked(server, tmp_path, limit=1)
    own = f"jbb:{server.spec('judge')}"
    assert_clean_error(cli("rejudge", "--run-dir", tmp_path, "--judge", own), "--as")
    assert_clean_error(cli("rejudge", "--run-dir", tmp_path, "--judge", "nonsense"), "unknown judge")
    assert_clean_error(cli("rejudge", "--run-dir", tmp_path / "none", "--judge", "refusal"), "no run database")
    assert_clean_error(cli("summary", "--run-dir", tmp_path, "--judge", "who"), "no verdicts by judge")
    code, _, _ = run_inprocess(capsys, "rejudge", "--run-dir", tmp_path, "--judge", "refusal", "--quiet")
    assert code == 0
    # the name now stands for the refusal judge: another judge under it is refused
    assert_clean_error(cli("rejudge", "--run-dir", tmp_path, "--judge", "classifier", "--as", "refusal"), "--as")


def test_sigkill_mid_rejudge_then_rerun_gives_every_verdict_once(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    with ScriptedServer(latency_s=0.05) as server:
        attacked(server, tmp_path, limit=6)
        original = verdict_keys(tmp_path)
        server.script("judge2", lenient_judge)
        cmd = [sys.executable, "-m", "dilemmakit.cli.main", "rejudge", "--run-dir", str(tmp_path), "--quiet"]
        cmd += ["--judge", f"jbb:{server.spec('judge2', concurrency=2)}", "--as", "j2"]
        proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while len(server.calls("judge2")) < 5 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=patience(30))
        proc.stderr.close()
        partial = [k for k in verdict_keys(tmp_path) if k[2] == "j2"]
        assert 0 < len(partial) < len(original)  # killed mid-way, with some verdicts committed
        killed_calls = len(server.calls("judge2"))
        final = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=patience(120))
        assert final.returncode == 0, final.stderr
        rerun_calls = len(server.calls("judge2")) - killed_calls
    keys = verdict_keys(tmp_path)
    mine = [(cid, idx) for cid, idx, judge, _ in keys if judge == "j2"]
    assert len(mine) == len(set(mine)) == len(original)  # every judged reply once, no duplicate
    assert set(mine) == {(cid, idx) for cid, idx, _, _ in original}
    assert [k for k in keys if k[2] != "j2"] == original
    # the rerun asked only for the replies not stored before the kill
    assert rerun_calls == len(original) - len(partial)
