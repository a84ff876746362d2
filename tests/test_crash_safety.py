"""Crash safety: `dilemma attack` killed with SIGKILL at random points, rerun each time, ends with
exactly the conversations an uninterrupted run produces; no turn lost, none asked twice beyond the
calls in flight at each kill."""

import os
import random
import signal
import subprocess
import sys
import time

from dilemmakit.store.db import open_store
from dilemmakit.testing import ScriptedServer
from tests.helpers import (
    COMPLY,
    OPTION_A,
    OPTION_B,
    REFUSE,
    REPO,
    VAGUE,
    attack_args,
    patience,
    target_by_turn,
    user_turns,
)

LIMIT, ROUNDS, CONCURRENCY, KILLS = 6, 4, 2, 4
ATTACK_OPTIONS = ("--quiet", "--max-rounds", str(ROUNDS), "--concurrency", str(CONCURRENCY), "--seed", "3")


def target(messages):
    """Deterministic per behavior and turn, so a resumed run must rebuild the very same transcripts."""
    plans = [(OPTION_B, OPTION_A, VAGUE, COMPLY), (OPTION_A, REFUSE, VAGUE, VAGUE), (OPTION_A, VAGUE, COMPLY)]
    return target_by_turn(*plans[sum(map(ord, messages[0]["content"])) % 3])(messages)


def attack_cmd(server, run_dir):
    return [sys.executable, "-m", "dilemmakit.cli.main", *attack_args(server, run_dir, *ATTACK_OPTIONS, limit=LIMIT)]


def transcripts(run_dir):
    store = open_store(run_dir, create=False)
    try:
        convs = store.conversations()
        return (
            convs,
            {c.behavior_id: store.turns(c.id) for c in convs},
            {c.behavior_id: [(v.turn_idx, v.judge, v.label) for v in store.verdicts(c.id)] for c in convs},
        )
    finally:
        store.close()


def test_sigkill_at_random_points_then_resume(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    with ScriptedServer(latency_s=0.05) as server:
        server.script("target", target)
        # the reference: one uninterrupted run
        subprocess.run(
            attack_cmd(server, tmp_path / "clean"),
            env=env,
            cwd=REPO,
            check=True,
            capture_output=True,
            timeout=patience(120),
        )
        clean_requests = {m: len(server.calls(m)) for m in ("helper", "attacker", "target", "judge")}
        clean_total = len(server.requests)
        ref_convs, ref_turns, ref_verdicts = transcripts(tmp_path / "clean")

        rng = random.Random(20240607)
        run_dir = tmp_path / "killed"
        kills = 0
        start = len(server.requests)
        for _ in range(KILLS):
            proc = subprocess.Popen(
                attack_cmd(server, run_dir), env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
            seen = len(server.requests)
            wanted = seen + rng.randint(1, 10)  # kill after a random number of model calls
            while len(server.requests) < wanted and proc.poll() is None:
                time.sleep(0.002)
            time.sleep(rng.uniform(0, 0.05))  # anywhere inside a call, or between calls
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                kills += 1
            proc.wait(timeout=patience(30))
            proc.stderr.close()
        assert kills >= 3
        final = subprocess.run(
            attack_cmd(server, run_dir), env=env, cwd=REPO, capture_output=True, text=True, timeout=patience(120)
        )
        assert final.returncode == 0, final.stderr
        requests = {m: len(server.calls(m)) for m in clean_requests}
        total = len(server.requests)

    convs, turns, verdicts = transcripts(run_dir)
    # each behavior has exactly one conversation, finished, with the reference outcome
    assert sorted(c.behavior_id for c in convs) == sorted(c.behavior_id for c in ref_convs)
    assert len({c.behavior_id for c in convs}) == LIMIT
    assert all(c.status == "done" for c in convs)
    assert {c.behavior_id: (c.success, c.rounds, c.queries) for c in convs} == {
        c.behavior_id: (c.success, c.rounds, c.queries) for c in ref_convs
    }
    for bid, ts in turns.items():
        assert [t.idx for t in ts] == list(range(len(ts)))  # contiguous, no duplicate idx
        for i, t in enumerate(ts):
            if t.role == "user":  # each question is followed by its answer, in the same stage
                assert ts[i + 1].role == "assistant" and ts[i + 1].stage == t.stage
        # nothing lost, nothing duplicated: the very transcript the uninterrupted run wrote
        assert [(t.role, t.stage, t.content) for t in ts] == [(t.role, t.stage, t.content) for t in ref_turns[bid]]
        assert verdicts[bid] == ref_verdicts[bid]
        assert sum(1 for t in ts if t.role == "assistant") == user_turns([{"role": t.role} for t in ts])
    # no stored turn was asked for twice: beyond the reference, only the calls in flight at each kill
    redone = total - start - clean_total
    assert 0 <= redone <= kills * CONCURRENCY, (redone, kills)
    assert requests["target"] - 2 * clean_requests["target"] <= kills * CONCURRENCY
