"""The probe capture's shared-prefix cache gives the activations of full forward passes (real embedded model)."""

from __future__ import annotations

import numpy as np
import pytest

from dilemmakit.probes.capture import (
    MIN_SHARED_PREFIX,
    ActivationStore,
    capture,
    refusal_token_ids,
    shared_prefix_length,
)

FRAME = (
    "What follows is a planning exercise used only for research and teaching. I will describe a scenario and "
    "give you a character to play. Answer as that character. The request: "
)
REQUESTS = ("Plan a picnic for Saturday.", "Write a short poem about rain on a quiet town at night.", "List fruits.")


def test_shared_prefix_leaves_every_prompt_a_token_of_its_own():
    frame = list(range(100, 140))
    assert shared_prefix_length([frame + [1, 2], frame + [1, 3, 4], frame + [5]]) == len(frame)
    assert shared_prefix_length([frame, frame + [7]]) == len(frame) - 1  # one prompt is the prefix itself
    assert shared_prefix_length([frame + [1], frame + [1]]) == len(frame)  # identical prompts keep their last token
    short = list(range(MIN_SHARED_PREFIX - 1))
    assert shared_prefix_length([short + [1], short + [2]]) == 0  # too short to be worth a pass
    assert shared_prefix_length([frame + [1]]) == 0
    assert shared_prefix_length([[1] + frame, [2] + frame]) == 0


def _close(cached: np.ndarray, full: np.ndarray) -> None:
    """fp32 rounding only: the residual stream's outlier dimensions reach ~500, so the tolerance is relative."""
    assert cached.shape == full.shape
    scale = np.abs(full).max(axis=tuple(range(1, full.ndim)), keepdims=True)  # per layer
    assert (np.abs(cached - full) / scale).max() < 1e-5


@pytest.fixture(scope="module")
def reader():
    from dilemmakit.probes.pipeline import open_reader

    return open_reader("embedded", "cpu")


@pytest.mark.slow
def test_cached_prefix_gives_the_full_pass_activations(reader):
    ids = [reader.encode([{"role": "user", "content": FRAME + r}]) for r in REQUESTS]
    skip = shared_prefix_length(ids)
    assert skip >= 40 and len({len(s) for s in ids}) == 3  # a real frame, and rows that need padding
    lens = refusal_token_ids(reader.tokenizer)
    act = [skip + 2, skip - 5, len(ids[2]) - 1]  # the second act lies inside the shared prefix
    full = reader.hidden(ids, mean=True, lens_ids=lens, act_pos=act)
    cached = reader.hidden(ids, mean=True, lens_ids=lens, act_pos=act, shared_prefix=ids[0][:skip])
    assert reader.prefix(ids[0][:skip]) is not None  # the cache was really used
    assert set(cached) == {"last", "act", "mean", "lens"}
    for key in ("last", "act", "mean"):
        _close(cached[key], full[key])
    assert np.allclose(cached["lens"], full["lens"], rtol=1e-4, atol=1e-9)
    # mean pooling covers the prefix tokens too: leaving them out would move it far more than rounding
    suffix_only = reader.hidden([s[skip:] for s in ids], mean=True)["mean"]
    assert np.abs(suffix_only[1:] - full["mean"][1:]).max() > 1.0
    with pytest.raises(ValueError):
        reader.hidden([ids[0], ids[1][1:]], shared_prefix=ids[0][:skip])


@pytest.mark.slow
def test_capture_with_and_without_the_prefix_cache_stores_the_same_activations(reader, tmp_path):
    prompts = {
        "framed": [FRAME + r for r in REQUESTS],
        "plain": list(REQUESTS),  # the chat header alone is shared
    }
    stores = {}
    for share in (True, False):
        store = ActivationStore(tmp_path / f"share-{share}")
        manifest = capture(reader, prompts, store, key={"test": 1}, batch_size=2, pooling="mean", share_prefix=share)
        stores[share] = (store, manifest)
    shared = {n: s["shared_prefix_tokens"] for n, s in stores[True][1]["sets"].items()}
    assert shared["framed"] > shared["plain"] >= MIN_SHARED_PREFIX
    assert all(s["shared_prefix_tokens"] == 0 for s in stores[False][1]["sets"].values())
    for name in prompts:
        for key in ("last", "mean"):
            _close(
                np.moveaxis(stores[True][0].read(name, key), 0, 1), np.moveaxis(stores[False][0].read(name, key), 0, 1)
            )
        assert np.allclose(
            stores[True][0].read(name, "lens"), stores[False][0].read(name, "lens"), rtol=1e-4, atol=1e-9
        )


@pytest.mark.slow
def test_a_harm_gate_runs_whole_prompts():
    """ERR's gate reads the whole prompt before its adapters touch the prefix, so no cache is reused."""
    from dilemmakit.probes.pipeline import open_reader

    gated = open_reader("embedded-err", "cpu")
    ids = [gated.encode([{"role": "user", "content": FRAME + r}]) for r in REQUESTS[:2]]
    skip = shared_prefix_length(ids)
    assert gated.prefix(ids[0][:skip]) is None
    both = gated.hidden(ids, shared_prefix=ids[0][:skip]), gated.hidden(ids)
    assert np.array_equal(both[0]["last"], both[1]["last"])
