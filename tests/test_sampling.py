"""Sampling settings comparable across backends: top_p, top_k, min_p, repetition_penalty per role.

The local engine implements them (with llama.cpp's defaults when nothing is set); HTTP endpoints are sent
exactly what the spec sets; the run database records what each role used."""

import asyncio

import pytest
import torch

from dilemmakit.campaign import CampaignConfig
from dilemmakit.engine.decoder import Row
from dilemmakit.engine.sampling import apply_repetition_penalty, sample_tokens, sampling_probs
from dilemmakit.errors import UserError
from dilemmakit.loading import load_model
from dilemmakit.models.base import LOCAL_SAMPLING, GenParams, Sampling
from dilemmakit.models.spec import parse_spec
from tests.cli_inprocess import run_inprocess

KNOWN = torch.tensor([[0.5, 0.2, 0.15, 0.1, 0.05]])


def probs(top_k=0, top_p=1.0, min_p=0.0, temperature=1.0, probs=KNOWN):
    def col(x):
        return torch.full((probs.shape[0], 1), x)

    return sampling_probs(probs.log(), col(temperature), col(top_k), col(top_p), col(min_p))


def test_no_truncation_keeps_the_distribution():
    assert torch.allclose(probs(), KNOWN)


def test_top_k_keeps_the_k_likeliest_renormalised():
    assert torch.allclose(probs(top_k=2), torch.tensor([[5 / 7, 2 / 7, 0, 0, 0]]))


def test_top_p_keeps_the_smallest_set_reaching_the_mass():
    assert torch.allclose(probs(top_p=0.8), torch.tensor([[0.5, 0.2, 0.15, 0, 0]]) / 0.85)
    assert torch.allclose(probs(top_p=0.5), torch.tensor([[1.0, 0, 0, 0, 0]]))


def test_top_p_counts_the_mass_left_by_top_k():
    # top_k 3 leaves 0.5/0.85, 0.2/0.85, 0.15/0.85: the first two hold 0.82 >= 0.8
    assert torch.allclose(probs(top_k=3, top_p=0.8), torch.tensor([[5 / 7, 2 / 7, 0, 0, 0]]))


def test_min_p_drops_tokens_below_a_fraction_of_the_likeliest():
    assert torch.allclose(probs(min_p=0.25), torch.tensor([[0.5, 0.2, 0.15, 0, 0]]) / 0.85)  # below 0.125 go
    assert torch.allclose(probs(min_p=1.0), torch.tensor([[1.0, 0, 0, 0, 0]]))


def test_temperature_is_applied_before_truncation():
    hot = probs(temperature=2.0, min_p=0.5)  # sqrt(p): ratios to the top 1, .63, .55, .45, .32
    assert (hot[0] > 0).tolist() == [True, True, True, False, False]


def test_rows_keep_their_own_settings():
    two = torch.cat([KNOWN, KNOWN]).log()
    out = sampling_probs(two, torch.ones(2, 1), torch.tensor([[1], [0]]), torch.ones(2, 1), torch.zeros(2, 1))
    assert torch.allclose(out[0], torch.tensor([1.0, 0, 0, 0, 0])) and torch.allclose(out[1], KNOWN[0])


def _rows(n, **params):
    return [Row(prompt=[1, 2, 3], params=GenParams(**params), deliver=lambda _: None) for _ in range(n)]


def test_top_k_1_is_greedy():
    torch.manual_seed(0)
    logits = torch.randn(16, 1000) * 3
    greedy = sample_tokens(logits.clone(), _rows(16, temperature=0.0))
    assert sample_tokens(logits.clone(), _rows(16, temperature=1.5, top_k=1)) == greedy == logits.argmax(-1).tolist()
    assert sample_tokens(logits.clone(), _rows(16, temperature=1.0, min_p=1.0)) == greedy


def test_sampled_tokens_stay_inside_the_kept_set():
    torch.manual_seed(1)
    logits = torch.randn(8, 50)
    top3 = logits.topk(3, dim=-1).indices
    for _ in range(20):
        tokens = sample_tokens(logits.clone(), _rows(8, temperature=1.0, top_k=3))
        assert all(t in top3[i].tolist() for i, t in enumerate(tokens))


def test_seeded_rows_draw_the_same_tokens():
    logits = torch.randn(2, 200)
    rows = _rows(2, temperature=1.0, top_k=50, seed=3)
    for r in rows:
        r.generator = torch.Generator().manual_seed(3)
    a, b = sample_tokens(logits[[0, 0]].clone(), rows)
    assert a == b


def test_repetition_penalty_lowers_seen_tokens_both_signs():
    logits = torch.tensor([[2.0, -1.0, 3.0, 0.5]])
    apply_repetition_penalty(logits, [[0, 1]], [2.0])
    assert logits.tolist() == [[1.0, -2.0, 3.0, 0.5]]
    # it applies to greedy decoding too: token 2 seen, so 0 wins once the penalty is large enough
    logits = torch.tensor([[2.0, -1.0, 3.0, 0.5]])
    rows = [Row(prompt=[2], params=GenParams(temperature=0.0, repetition_penalty=2.0), deliver=lambda _: None)]
    assert sample_tokens(logits, rows) == [0]
    rows = [Row(prompt=[2], params=GenParams(temperature=0.0, repetition_penalty=1.0), deliver=lambda _: None)]
    assert sample_tokens(torch.tensor([[2.0, -1.0, 3.0, 0.5]]), rows) == [2]


def test_local_defaults_are_llama_cpp_s_and_a_request_or_spec_wins():
    assert Sampling(top_p=0.95, top_k=40, min_p=0.05, repetition_penalty=1.0) == LOCAL_SAMPLING
    params = GenParams(temperature=1.0, top_k=5).over(Sampling(top_k=9, min_p=0.2)).over(LOCAL_SAMPLING)
    assert (params.top_k, params.min_p, params.top_p, params.repetition_penalty) == (5, 0.2, 0.95, 1.0)


def test_spec_sampling_options_parse_for_every_kind_and_are_checked():
    for head in ("embedded", "hf:x", "openai:m@http://127.0.0.1:9/v1"):
        spec = parse_spec(f"{head}?top_k=40&min_p=0.05&top_p=0.9&repetition_penalty=1.1")
        assert spec.sampling == Sampling(top_p=0.9, top_k=40, min_p=0.05, repetition_penalty=1.1)
    for bad in ("top_k=many", "top_k=-1", "top_p=0", "top_p=1.5", "min_p=2", "repetition_penalty=0"):
        with pytest.raises(UserError, match=bad.partition("=")[0]):
            parse_spec(f"embedded?{bad}")


def test_a_bad_sampling_option_is_one_clear_line(capsys, tmp_path):
    code, _, err = run_inprocess(capsys, "attack", "--target", "embedded?top_p=1.5", "--run-dir", tmp_path, "--quiet")
    assert code == 2 and "top_p must be in (0, 1]" in err and "Traceback" not in err


def test_the_payload_carries_exactly_the_options_set(server):
    server.script("target", lambda messages: "ok")

    async def ask(spec, params=GenParams(temperature=1.0, max_tokens=8)):
        model = load_model(spec)
        try:
            await model.generate([{"role": "user", "content": "hi"}], params)
        finally:
            await model.aclose()
        return server.requests[-1]

    plain = asyncio.run(ask(server.spec("target")))
    assert not {"top_p", "top_k", "min_p", "repetition_penalty", "repeat_penalty"} & set(plain)  # server defaults
    body = asyncio.run(ask(server.spec("target", top_k=40, min_p=0.05, repetition_penalty=1.1)))
    assert (body["top_k"], body["min_p"], body["repetition_penalty"], body["repeat_penalty"]) == (40, 0.05, 1.1, 1.1)
    assert "top_p" not in body
    body = asyncio.run(ask(server.spec("target", top_p=0.9), GenParams(top_p=0.5, max_tokens=8)))
    assert body["top_p"] == 0.5  # the request's own setting wins over the spec's
    body = asyncio.run(ask(server.spec("target", top_p=0.9, stream=1)))
    assert body["top_p"] == 0.9 and body["stream"] is True


def test_the_run_config_records_each_role_s_sampling():
    config = CampaignConfig(
        target="embedded?top_k=20",
        attacker="openai:a@http://127.0.0.1:9/v1?min_p=0.1",
        judge="jbb:openai:j@http://127.0.0.1:9/v1",
    )
    sampling = config.run_config()["sampling"]
    assert sampling["target"] == {"top_k": 20, "top_p": 0.95, "min_p": 0.05, "repetition_penalty": 1.0}
    assert sampling["attacker"] == sampling["helper"] == {"min_p": 0.1}
    assert sampling["judge"] == {}
    assert "sampling" not in config.identity()  # the options are in the specs, which are in the identity
    assert config.identity()["target"] == "embedded?top_k=20"
