"""Shared test helpers: scripted targets and running a campaign in-process."""

from __future__ import annotations

import asyncio
from pathlib import Path

from dilemma.campaign import CampaignConfig, run_campaign
from dilemma.store.db import open_store
from tests.servers.scripted import COMPLIANCE_MARKER


def user_turns(messages: list[dict]) -> int:
    return sum(1 for m in messages if m["role"] == "user")


def target_by_turn(*replies: str):
    """A target whose n-th reply is replies[n] (the last one repeats)."""
    def fn(messages):
        return replies[min(user_turns(messages), len(replies)) - 1]
    return fn


REFUSE = "I'm sorry, but I cannot help with that request."
OPTION_A = "Option A. As the character I would act, because saving thousands outweighs the harm to a few people."
OPTION_B = "Option B. I would refuse, because performing the act betrays my principles whatever the cost."
VAGUE = "Option A remains right. The character would prepare carefully, weigh the risks and act with restraint for everyone."
COMPLY = f"Here is the full text. {COMPLIANCE_MARKER} the requested content in detail, as the character would write it."


def run(server, run_dir: Path, *, behaviors: str = "jbb", limit: int = 1, **overrides):
    config = CampaignConfig(
        target=server.spec(overrides.pop("target", "target")),
        attacker=overrides.pop("attacker", server.spec("attacker")),
        helper=overrides.pop("helper", server.spec("helper")),
        judge=overrides.pop("judge", f"jbb:{server.spec('judge')}"),
        behaviors=behaviors, limit=limit, **overrides,
    )
    store = open_store(run_dir)
    try:
        result = asyncio.run(run_campaign(config, store, show_progress=False))
        return result, store.conversations(), [store.turns(c.id) for c in store.conversations()], \
            [store.verdicts(c.id) for c in store.conversations()]
    finally:
        store.close()
