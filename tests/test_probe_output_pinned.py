"""`dilemma probe`'s outputs pinned on a tiny captured set: probe.json, summary.txt and the --json headline of a
tiny random Llama (the embedded tokenizer) stay the same when the analyses' code is reshaped.

The expected files were written before the analyses became typed records. Numbers compare to 1e-6 (another
machine's float rounding); every key, its order, every string and the summary's text compare exactly."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

from dilemmakit.probes.pipeline import ProbeConfig, headline, run_probe

PINNED = Path(__file__).parent / "data" / "probe_pinned"
VOLATILE = ("created", "seconds", "out")  # the clock and the tmp dir


@pytest.fixture(scope="module")
def tiny_probe(tmp_path_factory):
    from transformers import AutoTokenizer

    from dilemmakit.loading.embedded import dequantized_copy
    from tests.helpers import tiny_llama

    root = tmp_path_factory.mktemp("probe-pin")
    tokenizer = AutoTokenizer.from_pretrained(str(dequantized_copy()))
    tiny_llama(vocab_size=len(tokenizer), layers=3, seed=25).save_pretrained(root / "model")
    tokenizer.save_pretrained(root / "model")
    config = ProbeConfig(
        model=f"hf:{root / 'model'}?device=cpu&dtype=float32",
        out=root / "out",
        limit=4,
        parts=("probe", "direction", "lens", "transfer"),
        folds=2,
        refits=2,
        plots=False,
    )
    result = run_probe(config, show_progress=False)
    assert result is not None
    return root / "out", result


def _stable(data: dict, model_dir: str) -> dict:
    data = {k: v for k, v in data.items() if k not in VOLATILE}
    return json.loads(json.dumps(data).replace(model_dir, "MODEL"))


def _same(got, want, where="$"):
    assert type(got) is type(want) or {type(got), type(want)} <= {int, float}, f"{where}: {got!r} vs {want!r}"
    if isinstance(want, dict):
        assert list(got) == list(want), f"{where}: keys {list(got)} vs {list(want)}"
        for k in want:
            _same(got[k], want[k], f"{where}.{k}")
    elif isinstance(want, list):
        assert len(got) == len(want), f"{where}: length {len(got)} vs {len(want)}"
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            _same(g, w, f"{where}[{i}]")
    elif isinstance(want, float):
        assert math.isclose(got, want, rel_tol=1e-6, abs_tol=1e-9) or (math.isnan(got) and math.isnan(want)), where
    else:
        assert got == want, f"{where}: {got!r} vs {want!r}"


def _check_or_write(name: str, got) -> None:
    path = PINNED / name
    if os.environ.get("DILEMMA_WRITE_PINS"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(got if isinstance(got, str) else json.dumps(got, indent=1))
    want = path.read_text()
    if isinstance(got, str):
        assert got == want
    else:
        _same(got, json.loads(want))


def test_probe_json_is_pinned(tiny_probe):
    out, _ = tiny_probe
    model_dir = str(out.parent / "model")
    _check_or_write("probe.json", _stable(json.loads((out / "probe.json").read_text()), model_dir))


def test_the_headline_is_pinned(tiny_probe):
    out, result = tiny_probe
    _check_or_write("headline.json", _stable(headline(result), str(out.parent / "model")))


def test_the_summary_is_pinned(tiny_probe):
    out, _ = tiny_probe
    _check_or_write("summary.txt", (out / "summary.txt").read_text().replace(str(out.parent / "model"), "MODEL"))
