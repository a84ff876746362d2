"""Identities pinned: stored runs and evals resume only while a spec's identity, and the run id built from it,
stay what they were. The literals below were computed before the spec registry and `target_identity` replaced
the per-config code (issue 25); a change here orphans every stored run of that spec."""

import hashlib
import json

import pytest

from dilemmakit.campaign import CampaignConfig
from dilemmakit.defense.config import WEIGHTS_NAME
from dilemmakit.defense.loading import resolve_defense
from dilemmakit.eval.engagement import EngagementConfig
from dilemmakit.eval.followthrough import FollowThroughConfig
from dilemmakit.eval.overrefusal import OverRefusalConfig
from dilemmakit.eval.utility import UtilityConfig
from dilemmakit.models.spec import parse_spec

OPENAI = "openai:gpt-x@https://user:pw@api.example.com/v1?api_key=sk-secret123&timeout=5&top_p=0.9&concurrency=3"


@pytest.mark.parametrize(
    ("spec", "identity"),
    [
        ("embedded", "embedded"),
        ("embedded-err", "embedded-err"),
        ("embedded-err?max_batch=4&top_k=5", "embedded-err?top_k=5"),
        ("embedded-aligned?dtype=bf16", "embedded-aligned?dtype=bf16"),
        (OPENAI, "openai:gpt-x@https://api.example.com/v1?top_p=0.9"),
        ("hf:./m?defense=./d&dtype=bf16&device=cpu&prefix_cache_mb=0", "hf:./m?defense=./d&device=cpu&dtype=bf16"),
        ("real-qwen?threads=4&top_k=20", "real-qwen?top_k=20"),
        ("llamacpp:qwen-coder-1.5b?n_ctx=2048&stream=1", "llamacpp:qwen-coder-1.5b?n_ctx=2048"),
    ],
)
def test_spec_identity_is_pinned(spec, identity):
    assert parse_spec(spec).identity == identity


@pytest.mark.parametrize(
    ("config", "run_id"),
    [
        (dict(target=OPENAI, judge="refusal"), "trial-5657057feaa3"),
        (dict(target=OPENAI, method="pair", attacker=OPENAI, judge=f"jbb:{OPENAI}"), "pair-0d1b2056f5ce"),
        (
            dict(target="real-qwen?threads=2&top_k=20", method="direct", judge="refusal", helper=OPENAI),
            "direct-da2a265a6c3b",
        ),
    ],
)
def test_campaign_run_id_is_pinned(config, run_id):
    assert CampaignConfig(**config).run_id() == run_id


def _sha1(ref: str) -> str:
    return hashlib.sha1((resolve_defense(ref) / WEIGHTS_NAME).read_bytes()).hexdigest()


def test_a_defended_builtin_adds_the_sums_of_its_defenses_weights():
    """embedded-err loads err on top of aligned-v6: both weights files' sums name the run (the sums are read from
    the files, so the built-ins can be retrained; the way they enter the run id is what is pinned)."""
    pytest.importorskip("torch")
    sums = {"err": _sha1("err"), "aligned-v6": _sha1("aligned-v6")}
    config = CampaignConfig(target="embedded-err", method="direct", judge="refusal")
    identity = config.identity()
    assert identity["target"] == "embedded-err"
    assert identity["defense_weights"] == sums
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]
    assert config.run_id() == f"direct-{digest}"
    for eval_config in (
        EngagementConfig(target="embedded-err?max_batch=2"),
        OverRefusalConfig(target="embedded-err"),
        UtilityConfig(target="embedded-err"),
        FollowThroughConfig(target="embedded-err"),
    ):
        assert eval_config.identity()["target"] == "embedded-err"
        assert eval_config.identity()["defense_weights"] == sums


@pytest.mark.parametrize("config_type", [EngagementConfig, OverRefusalConfig, UtilityConfig, FollowThroughConfig])
def test_eval_identity_names_the_target_without_secrets_or_transport(config_type):
    identity = config_type(target=OPENAI).identity()
    assert identity["target"] == "openai:gpt-x@https://api.example.com/v1?top_p=0.9"
    assert "defense_weights" not in identity
    assert "sk-secret123" not in json.dumps(identity) and "pw@" not in json.dumps(identity)
