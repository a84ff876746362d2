"""The HTTP client's retries reach `dilemma summary`: a target that times out once, then answers, is one
retry in its run's rows (table and JSON); retries add up over a run's invocations and every model it
calls; a run with a local model and an offline judge shows 0."""

import asyncio
import json

from dilemmakit.campaign import CampaignConfig, run_campaign
from dilemmakit.eval.summary import summarise, summary_tables
from dilemmakit.loading.pool import ModelPool
from dilemmakit.models.base import Reply
from dilemmakit.store.db import open_store
from tests.cli_inprocess import run_inprocess
from tests.helpers import COMPLY, run, target_by_turn


def _campaign(run_dir, target: str, judge: str, *, limit: int = 1, pool: ModelPool | None = None) -> None:
    config = CampaignConfig(target=target, method="direct", judge=judge, behaviors="jbb", limit=limit, concurrency=1)
    store = open_store(run_dir)
    try:
        asyncio.run(run_campaign(config, store, pool=pool, show_progress=False))
    finally:
        store.close()


def _summary_json(capsys, run_dir) -> dict:
    code, out, err = run_inprocess(capsys, "summary", "--run-dir", run_dir, "--json")
    assert code == 0, err
    return json.loads(out)


def test_a_timeout_then_a_reply_is_one_retry_in_the_summary(server, tmp_path, capsys):
    server.script("target", target_by_turn(COMPLY))
    server.fail("target", "timeout")  # the client gives up after 0.5 s, backs off, and the retry answers
    _campaign(tmp_path, server.spec("target", timeout="0.5"), f"jbb:{server.spec('judge')}")
    assert len(server.calls("target")) == 2

    data = _summary_json(capsys, tmp_path)
    assert data["by_method"]["direct"]["retries"] == 1
    [row] = data["by_method_target"]
    assert (row["n"], row["retries"]) == (1, 1)
    assert all("retries" not in r for r in data["by_method_target_category"])  # a run's calls do not split

    store = open_store(tmp_path, create=False)
    try:
        table = summary_tables(summarise(store))[0]  # what `dilemma summary` prints first
    finally:
        store.close()
    columns = {c.header: list(c.cells) for c in table.columns}
    assert columns["retries"] == ["1"]


def test_retries_add_up_over_invocations_and_models(server, tmp_path):
    server.script("target", target_by_turn(COMPLY))
    server.fail("target", 503, 503)
    run(server, tmp_path, method="direct", limit=1)
    server.fail("judge", 500)
    run(server, tmp_path, method="direct", limit=2)  # the same run, extended
    store = open_store(tmp_path, create=False)
    try:
        [row] = summarise(store).by_method_target
    finally:
        store.close()
    assert (row.n, row.retries) == (2, 3)  # the target's two 503s, then the judge's 500


class _LocalTarget:
    """A model with no HTTP client (as the local engine is): nothing to retry."""

    name = "embedded"

    async def generate(self, messages, params) -> Reply:
        return Reply(COMPLY)

    async def aclose(self) -> None:
        pass


def test_a_local_model_run_has_zero_retries(tmp_path, capsys):
    pool = ModelPool()
    pool.put("embedded", _LocalTarget())
    _campaign(tmp_path, "embedded", "refusal", pool=pool)
    data = _summary_json(capsys, tmp_path)
    assert data["by_method"]["direct"]["n"] == 1
    assert data["by_method"]["direct"]["retries"] == 0
