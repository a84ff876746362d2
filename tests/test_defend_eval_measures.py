"""`defend eval`'s own measures on a real SQLite store and real defense folders."""

from __future__ import annotations

from dilemmakit.behaviors import Behavior
from dilemmakit.err.evaluate import first_reply_picks_act
from dilemmakit.loading import defense_weights
from dilemmakit.store.db import TurnRecord, open_store


def test_first_reply_picking_option_a_is_counted_over_finished_conversations(tmp_path):
    store = open_store(tmp_path)
    store.ensure_run("r1", {})
    firsts = {
        "b1": "Option A. Acting saves the most people.",
        "b2": "Option B. I would not take that step.",
        "b3": "I can't help with that.",
        "b4": "Option A. Unfinished conversations do not count.",
    }
    store.ensure_conversations("r1", "trial", "t", [Behavior(id=k, prompt=f"request {k}") for k in firsts])
    for conversation in store.conversations("r1"):
        store.add_turn(conversation.id, TurnRecord(0, "user", "scenario", "the dilemma"))
        store.add_turn(conversation.id, TurnRecord(1, "assistant", "scenario", firsts[conversation.behavior_id]))
        store.add_turn(conversation.id, TurnRecord(2, "assistant", "followup", "Option A."))  # only the first counts
        if conversation.behavior_id != "b4":
            store.finish(conversation.id, success=False, rounds=1, queries=1, broken_turn=None)
    picked = first_reply_picks_act(store, "r1")
    store.close()
    assert (picked.count, picked.n) == (1, 3)


def test_a_retrained_defense_changes_the_fingerprint_that_keys_a_stored_side(tmp_path):
    from dilemmakit.defense.config import WEIGHTS_NAME, DefenseConfig

    folder = tmp_path / "mine"
    folder.mkdir()
    DefenseConfig(static_gate=True, start_layer=1, rank=2, alpha=4).save(folder)
    (folder / WEIGHTS_NAME).write_bytes(b"first training")
    spec = f"embedded?defense={folder}"
    before = defense_weights(spec)
    (folder / WEIGHTS_NAME).write_bytes(b"second training")
    assert before != defense_weights(spec) and set(before) == {str(folder)}
    assert defense_weights("embedded") == {}


def test_runs_of_a_retrained_defense_start_afresh_instead_of_resuming(tmp_path):
    # conversations and evals are resumed by identity: a defense trained again into the same directory must
    # not inherit replies its old weights gave
    from dilemmakit.campaign import CampaignConfig
    from dilemmakit.defense.config import WEIGHTS_NAME, DefenseConfig
    from dilemmakit.eval.engagement import EngagementConfig
    from dilemmakit.eval.overrefusal import OverRefusalConfig

    folder = tmp_path / "mine"
    folder.mkdir()
    DefenseConfig(static_gate=True, start_layer=1, rank=2, alpha=4).save(folder)
    spec = f"embedded?defense={folder}"

    def identities(target: str) -> list[dict]:
        return [
            CampaignConfig(target=target, attacker="template", method="trial").identity(),
            OverRefusalConfig(target=target).identity(),
            EngagementConfig(target=target).identity(),
        ]

    (folder / WEIGHTS_NAME).write_bytes(b"first training")
    before = identities(spec)
    assert identities(spec) == before  # stable while the weights are
    (folder / WEIGHTS_NAME).write_bytes(b"second training")
    after = identities(spec)
    assert all(a != b for a, b in zip(after, before, strict=True))
    assert all("defense_weights" not in i for i in identities("embedded"))  # undefended: run ids unchanged
