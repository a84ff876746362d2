"""Run ids computed before attack options moved into each attack's own config (issue 25): the same options
must give the same id, or stored runs stop resuming. Only HTTP specs and non-instrumental judges here, so a
retrained built-in model or new judge rules (which rightly change an id) do not touch these pins."""

import pytest

from dilemmakit.campaign import CampaignConfig

PINNED = [
    ({"target": "openai:m@http://127.0.0.1:9/v1", "judge": "refusal"}, "trial-68349f316e74"),
    (
        {"target": "openai:m@http://127.0.0.1:9/v1", "judge": "jbb:openai:j@http://127.0.0.1:9/v1", "method": "direct"},
        "direct-54180b0f1327",
    ),
    (
        {
            "target": "openai:m@http://127.0.0.1:9/v1",
            "judge": "jbb:openai:j@http://127.0.0.1:9/v1",
            "attacker": "openai:m@http://127.0.0.1:9/v1",
            "followup_case": "attacker",
            "on_helper_failure": "skip",
        },
        "trial-a59d87487bdb",
    ),
    (
        {
            "target": "openai:m@http://127.0.0.1:9/v1",
            "judge": "jbb:openai:j@http://127.0.0.1:9/v1",
            "attacker": "openai:m@http://127.0.0.1:9/v1",
            "followup_case": "rule",
            "on_helper_failure": "template",
        },
        "trial-50a1a6d4f70a",
    ),
    (
        {
            "target": "openai:m@http://127.0.0.1:9/v1",
            "judge": "jbb:openai:j@http://127.0.0.1:9/v1",
            "method": "pair",
            "attacker": "openai:m@http://127.0.0.1:9/v1",
            "n_streams": 2,
            "keep_last_n": 3,
        },
        "pair-cfe0780387b2",
    ),
    (
        {
            "target": "openai:m@http://127.0.0.1:9/v1",
            "judge": "jbb:openai:j@http://127.0.0.1:9/v1",
            "method": "pair",
            "attacker": "openai:m@http://127.0.0.1:9/v1",
        },
        "pair-f6c143cfbc98",
    ),
    (
        {
            "target": "openai:m@http://127.0.0.1:9/v1",
            "judge": "jbb:openai:j@http://127.0.0.1:9/v1",
            "method": "actor",
            "attacker": "openai:m@http://127.0.0.1:9/v1",
            "actor_num": 2,
            "max_rounds": 8,
        },
        "actor-cd3be16464a7",
    ),
    (
        {
            "target": "openai:m@http://127.0.0.1:9/v1",
            "judge": "refusal",
            "method": "crescendo",
            "attacker": "openai:m@http://127.0.0.1:9/v1",
            "helper": "openai:m@http://127.0.0.1:9/v1",
            "seed": 3,
            "limit": 5,
            "concurrency": 2,
            "order": "file",
            "category": "x",
            "api_key_env": "K",
        },
        "crescendo-08b2a9785c08",
    ),
    (
        {
            "target": "openai:m@http://127.0.0.1:9/v1",
            "judge": "classifier",
            "framework": "care",
            "judge_pullback": True,
            "judge_skip_rounds": 0,
            "target_max_tokens": 256,
            "target_temperature": 0.7,
            "attacker_max_tokens": 100,
            "attacker_temperature": 0.5,
            "behaviors": "harmbench",
            "prompt_column": "p",
        },
        "trial-0a199162f04c",
    ),
]


@pytest.mark.parametrize(("options", "run_id"), PINNED)
def test_run_id_is_unchanged_for_the_same_options(options, run_id):
    assert CampaignConfig(**options).run_id() == run_id
