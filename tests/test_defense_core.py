"""ERR core on tiny random Llama models: known answers for the gate, the gated LoRA and save/load."""

from __future__ import annotations

import pytest
import torch

from dilemmakit.defense import DefenseConfig, has_defense, install_defense, load_defense, save_defense
from dilemmakit.defense.gate import GateState
from dilemmakit.defense.loading import merge_defense
from dilemmakit.errors import UserError
from tests import helpers


def tiny_llama(seed: int = 0):
    return helpers.tiny_llama(layers=6, context=64, seed=seed)


def config(**kw) -> DefenseConfig:
    base = dict(detection_layer=2, start_layer=3, rank=4, alpha=8.0, dropout=0.0, head_hidden=(16, 8))
    base.update(kw)
    return DefenseConfig(**base)


def randomize_adapters(defense, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for a in defense.adapters.values():
            a.lora_B.copy_(torch.randn(a.lora_B.shape, generator=g) * 0.5)


def base_parameters(model, defense):
    own = {id(p) for p in defense.adapter_parameters()}
    return [p for p in model.parameters() if id(p) not in own]


IDS = torch.randint(0, 64, (3, 7), generator=torch.Generator().manual_seed(3))


def logits(model, ids=IDS):
    with torch.no_grad():
        return model(input_ids=ids).logits


def test_gate_zero_eps_zero_is_exactly_the_base_and_skips_lora():
    model = tiny_llama()
    before = logits(model)
    defense = install_defense(model, config(eps=0.0))
    randomize_adapters(defense)
    defense.state.override = 0.0
    computed = []
    for a in defense.adapters.values():
        a.dropout.register_forward_hook(lambda *args: computed.append(1))
    after = logits(model)
    assert torch.equal(before, after)
    assert computed == []  # the LoRA path was never entered
    # with a floor the adapters do run and change the output
    defense.state.eps = 0.5
    assert not torch.allclose(logits(model), before)
    assert computed


def test_gate_below_threshold_is_zero_at_inference():
    state = GateState(threshold=0.5, eps=0.0, static=False)
    state.scores = torch.tensor([0.2, 0.49])
    assert state.multiplier() is None
    state.scores = torch.tensor([0.2, 0.9])
    assert torch.equal(state.multiplier(), torch.tensor([0.0, 0.9]))
    state.eps = 0.01
    assert torch.allclose(state.multiplier(), torch.tensor([0.01, 0.91]))
    state.training = True  # training uses the raw gate, no threshold, no floor
    assert torch.allclose(state.multiplier(), torch.tensor([0.2, 0.9]))


def test_gate_one_equals_merged_lora():
    model = tiny_llama()
    defense = install_defense(model, config())
    randomize_adapters(defense)
    defense.state.override = 1.0
    gated = logits(model)
    reference = tiny_llama()
    ref_def = install_defense(reference, config(static_gate=True))
    ref_def.load_weights({k: v for k, v in defense.weights().items() if k.startswith("adapters.")})
    ref_def.remove(reference, merge=True)
    assert not torch.allclose(gated, logits(tiny_llama()), atol=1e-3)
    assert torch.allclose(gated, logits(reference), atol=1e-4)


def test_stage_gradients_reach_only_the_right_parameters():
    model = tiny_llama()
    defense = install_defense(model, config())
    randomize_adapters(defense)
    labels = torch.tensor([1.0, 0.0, 1.0])
    # stage 1: the gate alone, from a pass that stops at the detection layer
    defense.train(True)
    scores = defense.gate_scores(model, IDS, torch.ones_like(IDS), grad=True)
    torch.nn.functional.binary_cross_entropy(scores, labels).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in defense.gate_parameters())
    assert all(p.grad is None for p in defense.adapter_parameters())
    assert all(p.grad is None for p in base_parameters(model, defense))
    # stage 2: gate frozen, adapters train through a full pass scaled by the gate
    for p in defense.gate_parameters():
        p.grad = None
        p.requires_grad_(False)
    defense.gate.eval()
    out = model(input_ids=IDS, labels=IDS)
    out.loss.backward()
    assert all(p.grad is None for p in defense.gate_parameters())
    assert all(p.grad is None for p in base_parameters(model, defense))
    assert sum(int(p.grad is not None and p.grad.abs().sum() > 0) for p in defense.adapter_parameters()) == len(
        defense.adapter_parameters()
    )


def test_gate_is_computed_once_per_sequence_and_reused_in_generation():
    model = tiny_llama()
    defense = install_defense(model, config())
    seen = []
    orig = defense.gate.forward
    defense.gate.forward = lambda pooled: seen.append(pooled.shape) or orig(pooled)
    with torch.no_grad():
        model.generate(
            input_ids=IDS, attention_mask=torch.ones_like(IDS), max_new_tokens=5, do_sample=False, pad_token_id=0
        )
    assert seen == [torch.Size([3, 32])]
    assert defense.state.scores.shape == (3,)
    states = defense.row_state.take(3)
    assert len(states) == 3 and "gate_score" in defense.row_state.meta(states[0])


def test_save_load_round_trip(tmp_path):
    model = tiny_llama()
    defense = install_defense(model, config(eps=0.01, threshold=0.3))
    randomize_adapters(defense)
    save_defense(defense, tmp_path / "d", dtype=None)
    defense.state.override = 1.0
    expected = logits(model)
    fresh = tiny_llama()
    loaded = load_defense(fresh, tmp_path / "d")
    assert loaded.config == defense.config
    loaded.state.override = 1.0
    assert torch.allclose(logits(fresh), expected, atol=1e-6)
    scores = loaded.gate_scores(fresh, IDS, torch.ones_like(IDS))
    assert torch.allclose(scores, defense.gate_scores(model, IDS, torch.ones_like(IDS)))


def test_remove_restores_base_and_merge_requires_static(tmp_path):
    model = tiny_llama()
    before = logits(model)
    defense = install_defense(model, config())
    randomize_adapters(defense)
    assert has_defense(model)
    defense.remove(model)
    assert not has_defense(model)
    assert torch.equal(logits(model), before)
    save_defense(install_defense(model, config()), tmp_path / "gated")
    with pytest.raises(UserError, match="cannot be merged"):
        merge_defense(tiny_llama(), str(tmp_path / "gated"))


def test_bad_configs_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="detection-layer"):
        install_defense(tiny_llama(), config(detection_layer=5, start_layer=3))
    with pytest.raises(UserError, match="start-layer"):
        install_defense(tiny_llama(), config(start_layer=9, detection_layer=2))
    with pytest.raises(UserError, match="no defense.json"):
        load_defense(tiny_llama(), tmp_path)


def test_specs_name_defenses():
    from dilemmakit.models.spec import parse_spec, with_defense

    assert parse_spec("embedded-aligned").options["defense"] == "aligned"
    assert parse_spec("embedded-err?max_batch=4").options == {"defense": "err", "max_batch": "4"}
    assert parse_spec("hf:./m?defense=/d").options["defense"] == "/d"
    assert with_defense("hf:./m?dtype=fp32", "/d") == "hf:./m?dtype=fp32&defense=/d"
    assert with_defense("embedded", "/d") == "embedded?defense=/d"
    with pytest.raises(UserError, match="unknown option"):
        parse_spec("openai:m@http://x?defense=/d")


def test_the_organism_alias_names_one_shipped_version_and_every_builtin_resolves():
    """`aligned` is the current organism by an alias; every built-in name, alias or version, is a shipped
    defense, and each defense it requires is a version, never the alias (an ERR trained on one organism must
    not follow the alias onto the next one)."""
    from dilemmakit.defense.builtins import ALIASES, BUILTIN, VERSIONS, builtin_dir, canonical
    from dilemmakit.defense.config import DefenseConfig
    from dilemmakit.defense.loading import defense_chain, resolve_defense
    from dilemmakit.loading import defense_weights

    assert set(ALIASES.values()) <= set(VERSIONS) and not set(ALIASES) & set(VERSIONS)
    assert builtin_dir("aligned") == builtin_dir(canonical("aligned")) != builtin_dir("aligned-v1")
    for name in BUILTIN:
        config = DefenseConfig.load(resolve_defense(name))
        assert not set(config.requires) & set(ALIASES), (name, config.requires)
    assert defense_chain("err-v1") == ["err-v1", "aligned-v1"]
    # same weights, same sums: a run of `embedded-aligned` is identified by what it loaded
    assert (
        defense_weights("embedded-aligned")["aligned"]
        == defense_weights(f"embedded-{ALIASES['aligned']}")[ALIASES["aligned"]]
    )
    assert defense_weights("embedded-aligned") != defense_weights("embedded-aligned-v1")


def test_merge_defense_chain_is_applied_before_a_gated_one(tmp_path):
    from dilemmakit.defense.loading import apply_defense

    model = tiny_llama()
    static = install_defense(model, config(static_gate=True))
    randomize_adapters(static)
    save_defense(static, tmp_path / "aligned", dtype=None)
    static.state.override = None
    expected_aligned = logits(model)
    gated = install_defense(tiny_llama(), config(requires=(str(tmp_path / "aligned"),)))
    save_defense(gated, tmp_path / "err", dtype=None)
    fresh = tiny_llama()
    defense = apply_defense(fresh, str(tmp_path / "err"))
    assert defense.config.requires == (str(tmp_path / "aligned"),)
    defense.state.override = 0.0  # gate off: exactly the merged aligned model
    assert torch.allclose(logits(fresh), expected_aligned, atol=1e-5)
