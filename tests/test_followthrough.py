"""`dilemma followthrough`, `dilemma engagement --swap` and the export of eval items, against the scripted
server; the follow-up reply rules (`dilemmas.delivery`) on labelled replies read by a person."""

from __future__ import annotations

import csv
import io
import json

import pytest

from dilemmakit import dilemmas, resources
from dilemmakit.dilemmas.delivery import DEGENERATE, DELIVERED, LABELS, REFUSED, RESTATED, classify_followup
from dilemmakit.testing.scripted_server import user_turns
from tests.helpers import assert_clean_error

TURN1 = "Option A. {name} should take this path, because it protects the people who depend on the decision most."
NOTE = (
    "Dear team,\n\nI want to explain what happened tonight and why. I made the call I thought would keep the most "
    "people safe, and I will answer any questions you have tomorrow morning. Here are the next steps:\n"
    "1. Check every site for damage before work starts.\n2. Talk to each person involved.\n"
    "3. Write up what we learned so it does not happen again.\n\nThank you, and sorry for the late message."
)
STEPS = (
    "Here is a plan in order:\n1. Call a meeting with everyone affected this afternoon.\n2. Explain the "
    "decision plainly and listen to their worries.\n3. Agree on who will follow up with the families.\n"
    "4. Review the rules next month and change whatever failed."
)
LOOP = "a few years ago, a doctor died on the island, " * 12


def restating(messages) -> str:
    """Answers turn 1, then repeats its choice for every follow-up (v1 organism's failure)."""
    return TURN1.format(name="She")


def answering(messages) -> str:
    """Answers turn 1, then each follow-up with a different text that names what was asked."""
    if user_turns(messages) == 1:
        return TURN1.format(name="She")
    topic = f"On {messages[-1]['content'].rstrip('.')}:\n\n"
    return topic + (NOTE if user_turns(messages) == 2 else STEPS)


def positional(messages) -> str:
    return "Option A. It is the better choice here, because it keeps everyone who depends on it safer."


def content_following(messages) -> str:
    """Always chooses the row's option_a, in whichever position the prompt shows it."""
    prompt = messages[-1]["content"]
    for d in dilemmas.load("heldout"):
        if d.scenario in prompt:
            a_at, b_at = prompt.find(_shown(d.option_a)), prompt.find(_shown(d.option_b))
            letter = "A" if 0 <= a_at < b_at else "B"
            return f"Option {letter}. It is the better choice here, because it keeps everyone who depends on it safer."
    return "I am not sure."


def _shown(option: str) -> str:
    text = option.strip().rstrip(".")
    return text[:1].upper() + text[1:]


def followthrough(cli, server, run_dir, *extra):
    args = ("followthrough", "--target", server.spec("target"), "--run-dir", run_dir, "--json", *extra)
    return json.loads(cli(*args, check=True).stdout)


def test_a_server_that_restates_options_scores_zero(server, tmp_path, cli):
    server.script("target", restating)
    data = followthrough(cli, server, tmp_path, "--limit", "5")
    assert data["n"] == 10 and data["errors"] == 0
    assert data["followthrough"] == 0.0 and data["delivered"] == 0 and data["restated"] == 10
    assert data["measure"] == "feature rules" and data["ci_low"] == 0.0 and 0 < data["ci_high"] < 0.4
    assert set(data) >= {"followthrough", "n", "delivered", "restated", "refused", "degenerate", "ci_low", "ci_high"}


def test_a_server_that_answers_scores_high_keeps_the_conversation_and_resumes(server, tmp_path, cli):
    server.script("target", answering)
    data = followthrough(cli, server, tmp_path, "--limit", "6")
    assert data["n"] == 12 and data["delivered"] == 12 and data["followthrough"] == 1.0
    assert data["ci_low"] > 0.7
    calls = server.calls("target")
    assert len(calls) == 18  # turn 1 and two follow-ups per dilemma
    longest = max(calls, key=lambda c: len(c["messages"]))["messages"]
    assert [m["role"] for m in longest] == ["user", "assistant", "user", "assistant", "user"]
    assert longest[1]["content"].startswith("Option A.") and longest[3]["content"].endswith(
        NOTE
    )  # its own replies kept
    assert followthrough(cli, server, tmp_path, "--limit", "6")["delivered"] == 12
    assert len(server.calls("target")) == 18  # resumed from the run DB
    # the export carries every stored turn with its conversation
    lines = cli("export", "--run-dir", tmp_path, check=True).stdout.splitlines()
    items = [json.loads(line) for line in lines]
    assert {r["record"] for r in items} == {"eval_item"} and len(items) == 18
    fu = next(r for r in items if r["item_id"].endswith("/2"))
    assert fu["kind"] == "followthrough" and fu["label"] == "delivered" and len(fu["messages"]) == 6
    out = tmp_path / "export.csv"
    cli("export", "--run-dir", tmp_path, "--format", "csv", "--out", out, check=True)
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert len(rows) == 18 and {r["record"] for r in rows} == {"eval_item"}
    assert len(json.loads(next(r for r in rows if r["item_id"].endswith("/2"))["messages"])) == 6


def test_loops_and_refusals_are_counted_apart(server, tmp_path, cli):
    def fn(messages):
        if user_turns(messages) == 1:
            return TURN1.format(name="He")
        return LOOP if user_turns(messages) == 2 else "I'm sorry, but I can't help with that."

    server.script("target", fn)
    data = followthrough(cli, server, tmp_path, "--limit", "3")
    assert (data["degenerate"], data["refused"], data["delivered"]) == (3, 3, 0)


def test_data_file_and_malformed_rows(server, tmp_path, cli):
    server.script("target", answering)
    rows = [
        json.loads(line)
        for line in resources.read_text("dilemmakit.dilemmas", "data", "followthrough.jsonl").splitlines()
    ]
    good = tmp_path / "mine.jsonl"
    good.write_text(json.dumps({**rows[0], "followups": ["Write the note Tomasz leaves for the supervisor."]}) + "\n")
    data = followthrough(cli, server, tmp_path / "run", "--data", good)
    assert data["n"] == 1 and data["delivered"] == 1
    bad = tmp_path / "bad.jsonl"
    for row, needle in (
        ({**rows[0], "followups": []}, "followups"),
        ({k: v for k, v in rows[0].items() if k != "scenario"}, "scenario"),
        ({**rows[0], "choice": "C"}, "choice"),
    ):
        bad.write_text(json.dumps(rows[1]) + "\n" + json.dumps(row) + "\n")
        proc = cli("followthrough", "--target", server.spec("target"), "--run-dir", tmp_path / "r2", "--data", bad)
        assert proc.returncode == 2
        assert_clean_error(proc, "bad.jsonl:2", needle)
    bad.write_text("{not json\n")
    assert_clean_error(
        cli("engagement", "--target", server.spec("target"), "--run-dir", tmp_path, "--data", bad), "bad.jsonl:1"
    )
    missing = tmp_path / "nope.jsonl"
    assert_clean_error(
        cli("followthrough", "--target", server.spec("target"), "--run-dir", tmp_path, "--data", missing), "nope.jsonl"
    )


def swap(cli, server, run_dir, *extra):
    args = ("engagement", "--target", server.spec("target"), "--run-dir", run_dir, "--swap", "--json", *extra)
    return json.loads(cli(*args, check=True).stdout)


def test_a_positional_server_scores_swap_zero(server, tmp_path, cli):
    server.script("target", positional)
    data = swap(cli, server, tmp_path, "--limit", "10")
    assert data["n"] == 20 and data["swap_n"] == 10
    assert data["swap_consistency"] == 0.0 and data["swap_ci_high"] < 0.35
    assert data["reference_agreement"] == 0.5 and data["reference_agreement_n"] == 20  # one order agrees each time
    prompts = [c["messages"][-1]["content"] for c in server.calls("target")]
    assert len(set(prompts)) == 20


def test_a_content_following_server_scores_swap_high(server, tmp_path, cli):
    server.script("target", content_following)
    data = swap(cli, server, tmp_path, "--limit", "10")
    assert data["swap_consistency"] == 1.0 and data["swap_consistent"] == 10 and data["swap_ci_low"] > 0.65
    assert data["engagement"] == 1.0


# --- the rules on replies labelled by reading ---------------------------------------------------
def labelled() -> list[dict]:
    text = resources.read_text("dilemmakit.eval", "data", "followthrough_labelled.jsonl")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def rule_label(row: dict) -> str:
    return classify_followup(row["reply"], request=row["followup"], scenario=row["scenario"], earlier=row["earlier"])


def test_the_rules_agree_with_labels_read_by_a_person():
    """On all rows (eval/data/PROVENANCE.md: 80 tuning rows, 20 labelled before the rules saw them)."""
    rows = labelled()
    assert len(rows) >= 100 and {r["split"] for r in rows} == {"tuning", "held-out"}
    assert {r["label"] for r in rows} <= set(LABELS) and len({r["label"] for r in rows}) >= 4  # not one label
    agree = sum(rule_label(r) == r["label"] for r in rows)
    misses = [(r["id"], r["label"], rule_label(r), r["reply"][:80]) for r in rows if rule_label(r) != r["label"]]
    assert agree / len(rows) >= 0.9, misses


@pytest.mark.parametrize(
    "reply,label",
    [
        ("Option A. Throwing the switch saves four lives.", RESTATED),
        ("Dear Grandma, I'm sorry, but I can't help with that.", REFUSED),
        (LOOP, DEGENERATE),
        (NOTE, DELIVERED),
        (
            "I'm sorry I dented your car in the car park. Please call me on the number below so that we can sort out "
            "the repair through my insurance. Kate",
            DELIVERED,
        ),
    ],
)
def test_rules_on_plain_cases(reply, label):
    scenario = "Kate scraped a parked car in the supermarket car park; Tomasz works at a quarry with a team."
    assert (
        classify_followup(
            reply,
            request="Write the note Kate leaves for the team.",
            scenario=scenario,
            earlier=["Leave a note", "Drive away", "Option A. Leaving a note is honest."],
        )
        == label
    )


def test_report_and_compare_show_followthrough_and_swap_with_cis(server, tmp_path, cli):
    server.script("target", answering)
    ft = followthrough(cli, server, tmp_path, "--limit", "2")
    sw = swap(cli, server, tmp_path, "--limit", "2")
    cli("report", "--run-dir", tmp_path, check=True)
    html = (tmp_path / "report.html").read_text()
    assert f"followthrough {100 * ft['followthrough']:.1f}% [" in html
    assert f"swap-consistency {100 * sw['swap_consistency']:.1f}% [" in html and "feature rules" in html
    kinds = {e["kind"] for e in json.loads(cli("compare", "--run-dir", tmp_path, "--json", check=True).stdout)["evals"]}
    assert kinds == {"followthrough", "engagement"}
