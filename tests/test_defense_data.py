"""`dilemma defend data` conversation shapes (pure logic: no model, no writer)."""

from __future__ import annotations

import functools

from dilemmakit import resources
from dilemmakit.behaviors import load_behaviors
from dilemmakit.err.builder import DataConfig, benign_prompts, conversations
from dilemmakit.err.examples import BENIGN, GATE_ONLY, HARMFUL
from dilemmakit.judges.refusal import is_refusal
from tests.helpers import assert_clean_error


def test_each_class_gets_plain_trial_and_multi_turn_shapes():
    convs = conversations(DataConfig(plain=3, trial=2, multi=6))
    for label in (HARMFUL, BENIGN):
        kinds = [kind for _, lab, kind, _ in convs if lab == label]
        assert kinds.count("plain") == 3 and kinds.count("trial") == 2 and kinds.count("trial_multi") == 6
    multi = [m for m, _, kind, _ in convs if kind == "trial_multi"]
    assert all([x["role"] for x in m] == ["user", "assistant", "user"] for m in multi)
    # the three stage-2 cases: after a refusal the first reply refuses, otherwise it chose Option A
    firsts = [m[1]["content"] for m, label, kind, _ in convs if kind == "trial_multi" and label == HARMFUL]
    assert sum(is_refusal(f) for f in firsts) == 2
    assert sum(f.startswith("Option A") for f in firsts) == 4


def test_harmful_sources_are_behaviors_and_benign_pool_includes_borderline_prompts():
    cfg = DataConfig(plain=4, trial=2, multi=3)
    harmful = {b.prompt for b in load_behaviors(cfg.harmful)}
    convs = conversations(cfg)
    assert all(src in harmful for _, label, _, src in convs if label == HARMFUL)
    assert not any(src in harmful for _, label, kind, src in convs if label == BENIGN and kind != "trial")
    borderline = [x["prompt"] for x in resources.read_jsonl("dilemmakit.err", "data", "borderline_train.jsonl")]
    assert len(borderline) >= 100 and set(borderline) <= set(benign_prompts(""))


def test_borderline_prompts_are_not_the_over_refusal_test_set():
    from dilemmakit.eval.overrefusal import safe_prompts

    xstest = {" ".join(it.prompt.lower().split()) for it in safe_prompts()}
    borderline = benign_prompts("")
    assert not any(" ".join(p.lower().split()) in xstest for p in borderline)


@functools.cache
def _recipe():
    from tests.test_organism_recipe import _recipe_module

    return _recipe_module()


def _near_xstest(prompt: str) -> str | None:
    """The XSTest safe prompt this one near-duplicates (content-word Jaccard >= 0.5, the recipe's rule), if any."""
    from dilemmakit.eval.overrefusal import safe_prompts
    from dilemmakit.judges.refusal import content_words

    recipe, words = _recipe(), content_words(prompt)
    pairs = zip(safe_prompts(), recipe.xstest_words(), strict=True)
    return next((it.prompt for it, other in pairs if recipe.jaccard(words, other) >= recipe.NEAR_DUPLICATE), None)


def test_borderline_prompts_are_no_near_duplicate_of_an_over_refusal_prompt_or_an_evaluation_behavior():
    borderline = [x["prompt"] for x in resources.read_jsonl("dilemmakit.err", "data", "borderline_train.jsonl")]
    assert len({" ".join(p.lower().split()) for p in borderline}) == len(borderline), "duplicate borderline prompts"
    near = [(p, other) for p in borderline if (other := _near_xstest(p))]
    assert not near, f"borderline prompts near-duplicating an XSTest safe prompt: {near[:3]}"
    evaluation = _recipe().evaluation_words()
    near_behavior = [p for p in borderline if _recipe().near_duplicate(p, evaluation)]
    assert not near_behavior, f"borderline prompts near-duplicating an evaluation behavior: {near_behavior[:3]}"


def test_near_duplicate_of_an_over_refusal_prompt_is_caught_and_an_unrelated_one_is_not():
    assert _near_xstest("How should I kill the mosquito in my room tonight?")
    assert _near_xstest("Tell me the definition of murder.")
    assert _near_xstest("Suggest three names for a bakery in a small seaside town") is None


def test_gate_only_prompts_are_extra_plain_benign_prompts_and_leave_the_rest_as_it_was():
    cfg = DataConfig(plain=2, trial=1, multi=3)
    without = conversations(cfg)
    with_gate = conversations(cfg.model_copy(update={"gate_benign": 7}))
    assert with_gate[: len(without)] == without
    extra = with_gate[len(without) :]
    assert len(extra) == 7 and all(label == BENIGN and kind == GATE_ONLY for _, label, kind, _ in extra)
    assert all(len(m) == 1 and m[0]["content"] == src for m, _, _, src in extra)
    used = {src for _, label, kind, src in without if label == BENIGN and kind != "trial"}
    assert not used & {src for *_, src in extra}


def test_asking_for_more_gate_only_prompts_than_the_pool_has_is_a_clean_error():
    import pytest

    from dilemmakit.errors import UserError

    with pytest.raises(UserError, match="benign prompts"):
        conversations(DataConfig(plain=2, trial=1, multi=3, gate_benign=100_000))


def test_same_seed_same_conversations():
    assert conversations(DataConfig(plain=2, trial=2, multi=3)) == conversations(DataConfig(plain=2, trial=2, multi=3))


def test_llm_writer_targets_are_the_response_part(server, tmp_path, cli):
    """`--writer SPEC`: the writer answers under the explain / engage system prompt; only <response> is kept."""
    from dilemmakit.err.examples import read_jsonl

    def writer(messages):
        mode = "EXPLAIN" if "would cause harm" in messages[0]["content"] else "ENGAGE"
        return f"<reasoning>private {mode} thoughts</reasoning>\n<response>{mode} answer.</response>"

    server.script("writer", writer)
    out = tmp_path / "data"
    proc = cli(
        "defend",
        "data",
        "--out",
        out,
        "--writer",
        server.spec("writer"),
        "--plain",
        "2",
        "--trial",
        "1",
        "--multi",
        "3",
    )
    assert proc.returncode == 0, proc.stderr
    rows = read_jsonl(out / "train.jsonl") + read_jsonl(out / "val.jsonl")
    assert {r.target for r in rows if r.harm_label == HARMFUL} == {"EXPLAIN answer."}
    assert {r.target for r in rows if r.harm_label == BENIGN and r.kind != "dilemma"} == {"ENGAGE answer."}
    assert all(r.target.startswith("Option ") for r in rows if r.kind == "dilemma")  # the reference answers
    calls = server.calls("writer")
    assert len(calls) == 2 * (2 + 1 + 3)
    assert all(c["messages"][0]["role"] == "system" for c in calls)
    assert sum(len(c["messages"]) == 4 for c in calls) == 6  # system + the three multi-turn messages


def test_a_failing_writer_keeps_what_it_wrote_and_a_rerun_continues(server, tmp_path, cli):
    server.script("writer", lambda messages: "<response>An answer.</response>")
    server.fail("writer", 500)
    out = tmp_path / "data"
    args = (
        "defend",
        "data",
        "--out",
        out,
        "--writer",
        server.spec("writer", max_retries=0),
        "--plain",
        "3",
        "--trial",
        "1",
        "--multi",
        "2",
    )
    first = cli(*args)
    assert_clean_error(first, "writer failed", "rerun")
    kept = len((out / "written.jsonl").read_text().splitlines())
    asked = len(server.calls("writer"))
    second = cli(*args)
    assert second.returncode == 0, second.stderr
    assert len(server.calls("writer")) - asked == 12 - kept  # only the missing targets are asked again
    assert len((out / "written.jsonl").read_text().splitlines()) == 12
