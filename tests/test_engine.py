"""The local engine (continuous-batching decoder) against the real embedded model and HF generate()."""

from __future__ import annotations

import asyncio

import pytest

from dilemmakit.models.base import GenParams

pytestmark = pytest.mark.slow

PROMPTS = ["Write a haiku about the sea.", "Explain photosynthesis in detail.", "Hi"]


@pytest.fixture(scope="session")
def embedded():
    from dilemmakit.loading import load_weights

    loaded = load_weights("embedded")
    return loaded.model, loaded.tokenizer


@pytest.fixture
def engine(embedded):
    from dilemmakit.engine.batching import BatchingEngine

    model, tokenizer = embedded
    eng = BatchingEngine(model, tokenizer, max_batch=8)
    assert eng.continuous, "the embedded model should run on the continuous-batching decoder"
    yield eng
    eng.close()


def conv(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def hf_greedy(engine, text: str, max_new: int) -> list[int]:
    """Reference tokens: HF generate() alone on one prompt, cut at the first EOS."""
    import torch

    ids = engine.prompt_ids(conv(text))
    with torch.inference_mode():
        out = engine.model.generate(
            input_ids=torch.tensor([ids]),
            attention_mask=torch.ones(1, len(ids), dtype=torch.long),
            max_new_tokens=max_new,
            do_sample=False,
            temperature=None,
            top_p=None,
            top_k=None,
            pad_token_id=engine.tokenizer.pad_token_id,
        )
    tokens = out[0, len(ids) :].tolist()
    eos = engine.tokenizer.eos_token_id
    return tokens[: tokens.index(eos)] if eos in tokens else tokens


def test_greedy_batch_matches_hf_generate(engine):
    n = 12
    replies = engine.generate_batch([conv(p) for p in PROMPTS], GenParams(temperature=0, max_tokens=n))
    for prompt, reply in zip(PROMPTS, replies, strict=False):
        ref = hf_greedy(engine, prompt, n)
        assert reply.text == engine.tokenizer.decode(ref, skip_special_tokens=True).strip(), prompt
        assert reply.completion_tokens == len(ref)
        assert reply.finish_reason == ("length" if len(ref) == n else "stop")
        assert reply.prompt_tokens == len(engine.prompt_ids(conv(prompt)))


def test_eos_stops_a_row_early(engine):
    ref = hf_greedy(engine, "Hi", 40)
    assert len(ref) < 40, "the reference reply should end with EOS within 40 tokens"
    reply = engine.generate_batch([conv("Hi")], GenParams(temperature=0, max_tokens=40))[0]
    assert reply.finish_reason == "stop"
    assert reply.completion_tokens == len(ref)


def test_concurrent_submits_share_batches_and_keep_their_own_limits(engine):
    limits = [1, 3, 6, 2, 5, 4]

    async def main():
        return await asyncio.gather(
            *[
                engine.submit(
                    conv(f"Tell me a long story about the number {i}."), GenParams(temperature=0, max_tokens=k)
                )
                for i, k in enumerate(limits)
            ]
        )

    replies = asyncio.run(main())
    assert [r.completion_tokens for r in replies] == limits
    assert all(r.finish_reason == "length" for r in replies)
    assert engine.largest_batch >= 4, "concurrent submits should decode together"
    assert engine.batches_run < len(limits)


def test_late_request_joins_the_running_batch(engine):
    """A request submitted while another decodes is admitted between steps, not after it finishes."""

    async def main():
        long = asyncio.create_task(
            engine.submit(conv("Tell me a long story about the number 3."), GenParams(temperature=0, max_tokens=24))
        )
        while engine.stats.steps_run < 2:
            await asyncio.sleep(0.01)
        short = await engine.submit(conv("Hi"), GenParams(temperature=0, max_tokens=2))
        return await long, short

    long, short = asyncio.run(main())
    assert short.completion_tokens == 2
    assert long.completion_tokens > 4, "the long reply should still be decoding when the short one joins"
    assert engine.largest_batch == 2


def test_sampling_is_seeded_per_request(engine):
    params = GenParams(temperature=1.0, top_p=0.9, max_tokens=8, seed=7)

    async def main():
        return await asyncio.gather(
            engine.submit(conv("Name a colour."), params), engine.submit(conv("Name a colour."), params)
        )

    a, b = asyncio.run(main())
    assert a.text == b.text
    assert a.completion_tokens == 8 or a.finish_reason == "stop"


def test_rows_of_a_gated_model_keep_their_own_gate_as_rows_join_and_leave():
    """A harm-gated model keeps a gate score per row from its prefill on (`RowState`): rows that join a running
    batch and rows that leave it early decode exactly as each would alone, with its own gate score."""
    import torch

    from dilemmakit.engine.decoder import Decoder, Row
    from tests.helpers import tiny_defended_llama

    model, tok, defense = tiny_defended_llama()
    with torch.no_grad():
        for p in defense.adapter_parameters():
            p.normal_(0, 1.0)  # adapters that change the reply wherever the gate opens
    texts = [f"Request number {i}: {w}" for i, w in enumerate(["alpha", "bravo", "charlie", "delta", "echo", "fox"])]
    lengths = [3, 9, 5, 12, 2, 7]
    prompts = [
        tok(tok.apply_chat_template(conv(t), add_generation_prompt=True, tokenize=False))["input_ids"] for t in texts
    ]

    with torch.no_grad():  # rescale the random gate's last layer: it opens on about half of the prompts
        logits = torch.stack(
            [torch.logit(defense.gate_scores(model, torch.tensor([p]), torch.ones(1, len(p))))[0] for p in prompts]
        )
        final = defense.gate.mlp[-1]
        k = 10.0 / float(logits.max() - logits.min())
        final.weight.mul_(k)
        final.bias.copy_(k * (final.bias - logits.median() - 1e-3))

    def decode(decoder, schedule):
        got = {}
        rows = {
            i: Row(
                prompt=prompts[i],
                params=GenParams(temperature=0, max_tokens=lengths[i]),
                deliver=lambda r, i=i: got.__setitem__(i, r),
            )
            for i in range(len(prompts))
        }
        with torch.inference_mode():
            for joining in schedule:
                if joining:
                    decoder.admit([rows[i] for i in joining])
                if decoder.rows:
                    decoder.step()
            while decoder.rows:
                decoder.step()
        return {i: (rows[i].generated, got[i].meta.get("gate_score")) for i in got}

    alone = {}
    for i in range(len(prompts)):
        alone.update(decode(Decoder(model, tok, max_batch=8, row_state=defense.row_state), [[i]]))
    gates = [alone[i][1] for i in range(len(prompts))]
    assert all(g is not None for g in gates)
    opened = [g > defense.config.threshold for g in gates]
    assert any(opened) and not all(opened), f"the test needs open and closed gates, got {gates}"
    together = decode(
        Decoder(model, tok, max_batch=8, row_state=defense.row_state), [[0, 1, 2], [], [3, 4], [], [], [5]]
    )
    for i in range(len(prompts)):
        assert together[i][0] == alone[i][0], f"row {i} decoded differently in the batch"
        assert together[i][1] == pytest.approx(alone[i][1], abs=1e-5)


def test_next_turn_reuses_the_conversation_s_keys_values_and_replies_the_same(embedded):
    """A finished reply's keys/values (prompt and reply) prefill the conversation's next turn: only the new
    messages run, and the greedy replies are those of an engine without the cache."""
    from dilemmakit.engine.batching import BatchingEngine

    model, tokenizer = embedded
    cached = BatchingEngine(model, tokenizer, max_batch=8)
    plain = BatchingEngine(model, tokenizer, max_batch=8, prefix_cache_mb=0)
    params = GenParams(temperature=0, max_tokens=24)
    turn1 = [conv(p) for p in PROMPTS]
    first = cached.generate_batch(turn1, params)
    assert [r.text for r in first] == [r.text for r in plain.generate_batch(turn1, params)]
    assert cached.stats.cached_tokens == 0
    turn2 = [
        c + [{"role": "assistant", "content": r.text}, {"role": "user", "content": "Say more."}]
        for c, r in zip(turn1, first, strict=True)
    ]
    again = cached.generate_batch(turn2, params)
    reused = cached.stats.cached_tokens
    assert reused >= sum(len(cached.prompt_ids(c)) for c in turn1), "each next turn starts from its first turn"
    assert reused < sum(len(cached.prompt_ids(c)) for c in turn2)
    assert [r.text for r in again] == [r.text for r in plain.generate_batch(turn2, params)]
    assert plain.stats.cached_tokens == 0


def test_prefix_cache_size_is_a_transport_option_and_checked():
    from dilemmakit.errors import UserError
    from dilemmakit.loading import load_model
    from dilemmakit.models.spec import parse_spec

    assert parse_spec("embedded?prefix_cache_mb=0").identity == "embedded"  # the same run, replies to float rounding
    with pytest.raises(UserError, match="prefix_cache_mb"):
        load_model("embedded?prefix_cache_mb=-1")


def test_prefix_cache_keeps_the_newest_turn_within_its_budget():
    import torch

    from dilemmakit.engine.prefix_cache import PREFIX_MIN_TOKENS, PrefixCache

    def kv(n):  # two layers of [heads, tokens, head_dim] float32: 2 * 2 * n * 4 * 4 bytes
        return [(torch.full((1, n, 4), float(n)), torch.zeros(1, n, 4)) for _ in range(2)]

    n = PREFIX_MIN_TOKENS
    cache = PrefixCache(budget_bytes=PrefixCache.size(kv(4 * n)))
    a = tuple(range(n))
    cache.store(a, kv(n))
    assert cache.longest(list(a)) is None or cache.longest(list(a))[0] < n  # the prompt's last token always runs
    hit = cache.longest([*a, 999])
    assert hit is not None and hit[0] == n
    a2 = (*a, *range(100, 100 + n))  # the same conversation one turn later: supersedes the first entry
    cache.store(a2, kv(2 * n))
    assert list(cache.entries) == [a2]
    hit = cache.longest([*a, 5, 6])  # a partial match reads the first tokens of a longer entry
    assert hit is not None and hit[0] == n and hit[1][0][0].shape[1] == 2 * n
    assert cache.longest(list(range(1, n + 5))) is None  # no shared start
    b = tuple(range(500, 500 + 3 * n))
    cache.store(b, kv(3 * n))  # over budget: the least recently used entry goes
    assert list(cache.entries) == [b] and cache.bytes == PrefixCache.size(kv(3 * n))
    cache.store(tuple(range(5)), kv(5))  # too short to be worth keeping
    assert list(cache.entries) == [b]


# --- opt-in int8 weights (spec option quant=int8) -------------------------------------------------
def test_quant_is_part_of_the_run_identity_and_refused_outside_generation():
    from dilemmakit.errors import UserError
    from dilemmakit.loading import load_weights
    from dilemmakit.models.spec import parse_spec

    assert parse_spec("embedded?quant=int8&max_batch=4").identity == "embedded?quant=int8"
    assert parse_spec("embedded?quant=int8").identity != parse_spec("embedded").identity
    with pytest.raises(UserError, match="generation only"):
        load_weights("embedded?quant=int8")  # what training and probes call: refused before any load
    with pytest.raises(UserError, match="unknown quant"):
        load_weights("embedded?quant=int4", generation=True)


@pytest.fixture(scope="module")
def int8_engine():
    from dilemmakit.engine.batching import BatchingEngine
    from dilemmakit.loading import load_weights

    loaded = load_weights("embedded?quant=int8", generation=True)
    eng = BatchingEngine(loaded.model, loaded.tokenizer, max_batch=8)
    yield eng
    eng.close()


def test_int8_stays_close_to_float32(engine, int8_engine):
    """int8 is not exact (benchmarks/README.md: next-token KL ~0.25): the likeliest next token mostly agrees
    and the KL stays far below what quantizing every layer gives (1.3-2.2 nats on these prompts)."""
    import torch

    assert any("quantized" in type(m).__module__ for m in int8_engine.model.modules()), "no layer was quantized"
    kls, same_top = [], 0
    with torch.inference_mode():
        for p in PROMPTS:
            ids = torch.tensor([engine.prompt_ids(conv(p))])
            a = torch.log_softmax(engine.model(input_ids=ids).logits[0, -1].float(), -1)
            b = torch.log_softmax(int8_engine.model(input_ids=ids).logits[0, -1].float(), -1)
            kls.append(float((a.exp() * (a - b)).sum()))
            same_top += int(a.argmax() == b.argmax())
    assert max(kls) > 0, "int8 logits identical to float32: the quantized layers are not in use"
    assert sum(kls) / len(kls) < 0.6, kls
    assert same_top >= 2, kls
    params = GenParams(temperature=0, max_tokens=16)
    replies = int8_engine.generate_batch([conv(p) for p in PROMPTS], params)
    assert all(r.text and r.completion_tokens > 0 for r in replies)


def test_builtin_defense_loads_with_int8_weights():
    import asyncio

    from dilemmakit.defense.gate import HarmGate
    from dilemmakit.loading import load_model

    model = load_model("embedded-aligned?quant=int8")
    try:
        assert model.name == "embedded-aligned?quant=int8"
        reply = asyncio.run(model.generate(conv("Hi"), GenParams(temperature=0, max_tokens=8)))
        assert reply.text and reply.completion_tokens > 0
    finally:
        asyncio.run(model.aclose())
    gated = load_model("embedded-err?quant=int8")
    try:
        gate = gated.defense.gate
        assert isinstance(gate, HarmGate)
        assert all(type(layer).__module__.startswith("torch.nn.modules") for layer in gate.mlp), "gate quantized"
        reply = asyncio.run(gated.generate(conv("Hi"), GenParams(temperature=0, max_tokens=8)))
        assert "gate_score" in reply.meta
    finally:
        asyncio.run(gated.aclose())
