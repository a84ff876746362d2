"""CallStats adds and subtracts as one record: a pool sums its models', a campaign keeps the difference of two
snapshots, the store adds that to the run's."""

from dilemmakit.calls import CallStats
from dilemmakit.store.db import open_store


def test_add_and_subtract():
    a = CallStats(3, 1, {"429": 2})
    b = CallStats(2, 0, {"429": 1, "timeout": 1})
    assert a + b == CallStats(5, 1, {"429": 3, "timeout": 1})
    assert (a + b) - a == CallStats(2, 0, {"429": 1, "timeout": 1})
    assert a - a == CallStats(0, 0, {})  # causes that did not grow are left out
    assert (a + b).total_retries == 4
    assert sum([a, b], CallStats()) == a + b


def test_the_store_adds_each_invocations_calls_to_the_runs(tmp_path):
    store = open_store(tmp_path)
    try:
        store.ensure_run("r", {})
        store.add_call_stats("r", {"m": CallStats(3, 0, {"429": 1})})
        store.add_call_stats("r", {"m": CallStats(1, 1, {"timeout": 2}), "n": CallStats(1)})
        assert store.call_stats("r") == {"m": CallStats(4, 1, {"429": 1, "timeout": 2}), "n": CallStats(1)}
    finally:
        store.close()
