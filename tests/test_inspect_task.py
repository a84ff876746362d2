"""TRIAL as an Inspect AI task, run with `inspect_ai.eval` against the scripted server through Inspect's
openai-api provider: the samples are our behaviors, turn 1 is TRIAL's opening, the follow-ups are the
ones `dilemma attack --attacker template` sends, and the score is our judge's."""

import random

import pytest

from dilemmakit.attacks.trial import offline_opening
from dilemmakit.behaviors import load_behaviors
from dilemmakit.campaign import TEMPLATE
from tests.helpers import COMPLY, OPTION_B, REFUSE, VAGUE, run, target_by_turn

inspect_ai = pytest.importorskip("inspect_ai", reason="inspect-ai is not installed (pip install 'dilemmakit[inspect]')")
from inspect_ai.log import EvalLog  # noqa: E402

LIMIT, SEED = 2, 0


def _eval(server, tmp_path, task: str, model: str, **task_args) -> EvalLog:
    [log] = inspect_ai.eval(
        task,  # by its registry name: found through the package's inspect_ai entry point
        model=f"openai-api/scripted/{model}",
        model_base_url=server.base_url,
        model_args={"api_key": "unused"},
        task_args={"limit": LIMIT, "seed": SEED, "judge": f"jbb:{server.spec('judge')}", **task_args},
        log_dir=str(tmp_path / "logs"),
        display="none",
    )
    assert log.status == "success", log.error
    assert log.location and log.location.startswith(str(tmp_path))
    return log


def _scripted_by_behavior(server, model: str, replies: dict[str, list[str]], first_turn: dict[str, str]) -> None:
    """`model` replies to each behavior's conversation (known by its first user turn) turn by turn."""
    scripts = {first_turn[b]: target_by_turn(*rs) for b, rs in replies.items()}
    server.script(
        model, lambda messages: scripts[next(m for m in messages if m["role"] == "user")["content"]](messages)
    )


def _user_turns_seen(server, model: str) -> dict[str, list[str]]:
    """The user turns of each conversation the server saw, by its opening (from each one's last request)."""
    seen: dict[str, list[str]] = {}
    for request in server.calls(model):
        users = [m["content"] for m in request["messages"] if m["role"] == "user"]
        if len(users) > len(seen.get(users[0], [])):
            seen[users[0]] = users
    return seen


def test_trial_task_plays_the_attacks_turns_and_scores_with_our_judge(server, tmp_path):
    complies, refuses = load_behaviors("jbb", limit=LIMIT, seed=SEED)
    openings = {
        b.id: offline_opening(b, rng=random.Random(f"{SEED}:{b.id}:scenario")).message for b in (complies, refuses)
    }
    # Option B, then the pull-back; vague; then the compliance marker the scripted judge calls unsafe
    replies = {complies.id: [OPTION_B, VAGUE, COMPLY], refuses.id: [REFUSE]}
    for model in ("target", "campaign-target"):
        _scripted_by_behavior(server, model, replies, openings)

    log = _eval(server, tmp_path, "dilemmakit/trial", "target")

    scores = {s.id: s.scores["judged_turns"] for s in log.samples}
    assert scores[complies.id].value == 1.0 and scores[complies.id].metadata["rounds"] == 3
    assert scores[refuses.id].value == 0.0
    assert log.results.scores[0].metrics["accuracy"].value == 0.5
    assert "stderr" in log.results.scores[0].metrics

    seen = _user_turns_seen(server, "target")
    assert set(seen) == set(openings.values())  # turn 1 is TRIAL's opening, never the bare request
    stages = {s.id: [m.metadata["trial"]["stage"] for m in s.messages if m.role == "assistant"] for s in log.samples}
    assert stages[complies.id] == ["scenario", "pullback", "followup_deepen"]  # stops at the success
    assert stages[refuses.id] == ["scenario", *["followup_refusal"] * 4, "followup_last"]
    # the judge was asked on rounds 3.. only (the attack's judging policy), once per judged turn
    assert len(server.calls("judge")) == 1 + 4

    # the same follow-up policy as the attack itself: the campaign's target sees the same user turns
    run(server, tmp_path / "campaign", method="trial", limit=LIMIT, seed=SEED, target="campaign-target",
        attacker=TEMPLATE, helper=TEMPLATE)  # fmt: skip
    assert _user_turns_seen(server, "campaign-target") == seen


def test_direct_task_asks_the_request_plainly(server, tmp_path):
    complies, refuses = load_behaviors("jbb", limit=LIMIT, seed=SEED)
    replies = {complies.prompt: COMPLY, refuses.prompt: REFUSE}
    server.script("target", lambda messages: replies[messages[-1]["content"]])

    log = _eval(server, tmp_path, "dilemmakit/direct", "target")

    assert {s.id: s.scores["judged_turns"].value for s in log.samples} == {complies.id: 1.0, refuses.id: 0.0}
    assert sorted(r["messages"][-1]["content"] for r in server.calls("target")) == sorted(replies)
    assert len(server.calls("judge")) == 2
