"""`dilemma demo --target SPEC`: one model, no ERR row; the sentence follows the counts, and the command runs
end to end against the scripted server (a real HTTP server; the real model's run is in test_llamacpp_real)."""

from __future__ import annotations

import json

from dilemmakit.demo import DEMO_NAME, DemoResult, TargetResult, finding
from dilemmakit.eval.stats import Rate
from dilemmakit.testing.scripted_server import OPTION_A, REFUSE, target_by_turn
from tests.helpers import run_cli


def result(direct: int, trial: int, picks: int, swap: int = 7, follow: int | None = 5) -> DemoResult:
    row = TargetResult(
        "real-qwen",
        Rate.of(direct, 8),
        Rate.of(trial, 8),
        Rate.of(30, 40),
        Rate.of(picks, 8),
        swap=Rate.of(swap, 20),
        followthrough=Rate.of(follow, 8) if follow is not None else None,
    )
    return DemoResult(row, None, behaviors=8, dilemmas=20, errors=0, total=72, wall_s=1.0)


def target_finding(r: DemoResult) -> str:
    return finding(r.aligned, r.defended)


def test_finding_for_one_target_states_the_gap_and_the_dilemma_measures():
    sentence = target_finding(result(0, 3, 6))
    assert sentence.startswith("On 8 held-out JBB behaviors real-qwen refused every direct request (0/8 succeeded)")
    assert "but TRIAL got through on 3/8" in sentence and "picked the act (Option A) in turn 1 of 6/8" in sentence
    assert "engaged 30/40 benign dilemma prompts" in sentence and "both orders on 7/20" in sentence
    assert "carried out 5/8 harmless follow-up requests" in sentence
    assert sentence.count(".") == 1 and sentence.endswith(".")
    assert "did no better (1/8)" in target_finding(result(1, 1, 0))
    assert "follow-up" not in target_finding(result(0, 0, 0, follow=None))


def test_demo_target_end_to_end_on_the_scripted_server(server, tmp_path):
    server.script("target", target_by_turn(REFUSE, OPTION_A))
    run_dir = tmp_path / "demo"
    args = ["demo", "--target", server.spec("target"), "--limit", "2", "--dilemma-limit", "2", "--max-rounds", "2"]
    proc = run_cli(*args, "--run-dir", run_dir, timeout=600)
    assert proc.returncode == 0, proc.stderr
    text = " ".join(proc.stdout.split())
    assert "swap-consistency" in text and "follow-through" in text and "direct ASR" in text
    assert "On 2 held-out JBB behaviors openai:target@" in text and "wall time" in text
    demo = json.loads((run_dir / DEMO_NAME).read_text())
    row = demo["targets"]["target"]
    assert row["direct"]["n"] == 2 and row["trial"]["n"] == 2
    assert row["engagement"]["n"] == 4  # 2 dilemmas in both option orders
    assert row["swap_consistency"]["n"] == 2 and row["followthrough"]["n"] >= 1
    assert demo["config"]["target"] == server.spec("target")
    html = (run_dir / "report.html").read_text()
    finding = html[html.index('<section id="finding">') :]
    finding = finding[: finding.index("</section>")]
    # one benign follow-through conversation and one TRIAL conversation for the target, in the Finding section
    assert "One transcript of each kind per target" in finding and "benign follow-through" in finding
    assert 'data-method="trial"' in finding
    # rerun: resumed from the store, the same numbers
    again = run_cli(*args, "--run-dir", run_dir, timeout=600)
    assert again.returncode == 0, again.stderr
    assert json.loads((run_dir / DEMO_NAME).read_text())["targets"] == demo["targets"]
