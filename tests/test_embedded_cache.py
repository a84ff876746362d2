"""The dequantized copy of the embedded GGUF: written once, reused, rebuilt when the GGUF changes, same weights.

Runs on a tiny Llama GGUF written here (2 layers, byte-level BPE vocab) through the real transformers
conversion, with the cache dir in a temp dir."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from dilemmakit.loading import embedded


def write_tiny_gguf(path: Path, seed: int = 0) -> Path:
    import gguf

    rng = np.random.default_rng(seed)
    # GPT-2's byte-level alphabet: printable bytes map to themselves, the rest to chr(256 + i)
    printable = [*range(33, 127), *range(161, 173), *range(174, 256)]
    alphabet = [chr(b) for b in printable] + [chr(256 + i) for i in range(256 - len(printable))]
    tokens = ["<unk>", "<s>", "</s>", "<|im_start|>", "<|im_end|>", *alphabet, "he", "hel", "hell", "hello"]
    dim, ff, heads, kv_heads, layers = 32, 64, 4, 2, 2
    kv_dim = kv_heads * dim // heads
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(layers)
    writer.add_context_length(128)
    writer.add_embedding_length(dim)
    writer.add_feed_forward_length(ff)
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(len(tokens))
    writer.add_rope_dimension_count(dim // heads)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("smollm")
    writer.add_token_list(tokens)
    writer.add_token_types([3] * 5 + [1] * (len(tokens) - 5))
    writer.add_token_merges(["h e", "he l", "hel l", "hell o"])
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)
    writer.add_pad_token_id(2)
    writer.add_chat_template(
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )

    def tensor(name: str, *shape: int) -> None:
        writer.add_tensor(name, (rng.standard_normal(shape) * 0.1).astype(np.float32))

    tensor("token_embd.weight", len(tokens), dim)
    for i in range(layers):
        tensor(f"blk.{i}.attn_norm.weight", dim)
        tensor(f"blk.{i}.ffn_norm.weight", dim)
        tensor(f"blk.{i}.attn_q.weight", dim, dim)
        tensor(f"blk.{i}.attn_k.weight", kv_dim, dim)
        tensor(f"blk.{i}.attn_v.weight", kv_dim, dim)
        tensor(f"blk.{i}.attn_output.weight", dim, dim)
        tensor(f"blk.{i}.ffn_gate.weight", ff, dim)
        tensor(f"blk.{i}.ffn_up.weight", ff, dim)
        tensor(f"blk.{i}.ffn_down.weight", dim, ff)
    tensor("output_norm.weight", dim)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("DILEMMA_CACHE_DIR", str(root))
    return root


@pytest.fixture
def tiny(tmp_path) -> Path:
    (tmp_path / "pkg").mkdir()
    return write_tiny_gguf(tmp_path / "pkg" / "tiny.gguf")


@pytest.fixture
def conversions(monkeypatch) -> list[Path]:
    """Counts the real conversions run."""
    seen: list[Path] = []
    convert = embedded._convert

    def counting(gguf: Path, staging: Path) -> None:
        seen.append(gguf)
        convert(gguf, staging)

    monkeypatch.setattr(embedded, "_convert", counting)
    return seen


def state(path_or_gguf: Path) -> dict:
    from transformers import AutoModelForCausalLM

    if path_or_gguf.suffix == ".gguf":
        model = AutoModelForCausalLM.from_pretrained(path_or_gguf.parent, gguf_file=path_or_gguf.name)
    else:
        model = AutoModelForCausalLM.from_pretrained(path_or_gguf)
    return model.state_dict()


def copies(root: Path) -> list[str]:
    return sorted(p.name for p in root.glob("embedded-*") if p.is_dir())


def test_the_copy_is_written_once_and_holds_the_gguf_weights(cache, tiny, conversions):
    from transformers import AutoTokenizer

    copy = embedded.dequantized_copy(tiny)
    assert copy.parent == cache and copies(cache) == [copy.name]
    assert json.loads((copy / embedded.SOURCE_NAME).read_text())["gguf"] == "tiny.gguf"
    assert not list(cache.glob(".embedded-*")), "a staging dir was left behind"

    from_gguf, from_copy = state(tiny), state(copy)
    assert from_gguf.keys() == from_copy.keys()
    for name, weight in from_gguf.items():
        assert weight.dtype == from_copy[name].dtype and bool((weight == from_copy[name]).all()), name
    tokenizer = AutoTokenizer.from_pretrained(copy)
    assert (
        tokenizer("hello")["input_ids"]
        == AutoTokenizer.from_pretrained(tiny.parent, gguf_file=tiny.name)("hello")["input_ids"]
    )
    assert "<|im_start|>assistant" in tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], add_generation_prompt=True, tokenize=False
    )

    assert embedded.dequantized_copy(tiny) == copy
    assert conversions == [tiny], "the second load converted again"


def test_the_same_gguf_elsewhere_shares_the_copy(cache, tiny, tmp_path, conversions):
    copy = embedded.dequantized_copy(tiny)
    elsewhere = tmp_path / "other-env" / "tiny.gguf"
    elsewhere.parent.mkdir()
    shutil.copyfile(tiny, elsewhere)  # another environment: same content, new mtime
    assert embedded.dequantized_copy(elsewhere) == copy
    assert len(conversions) == 1
    index = json.loads((cache / embedded.INDEX_NAME).read_text())
    assert len(index) == 2 and set(index.values()) == {copy.name.removeprefix("embedded-")}


def test_a_changed_gguf_gets_a_new_copy_and_the_unused_old_one_goes(cache, tiny, conversions):
    old = embedded.dequantized_copy(tiny)
    write_tiny_gguf(tiny, seed=1)  # the package upgraded in place
    new = embedded.dequantized_copy(tiny)
    assert new != old and len(conversions) == 2
    assert not bool((state(new)["model.embed_tokens.weight"] == state(old)["model.embed_tokens.weight"]).all())
    assert copies(cache) == sorted([old.name, new.name]), "a copy used within the grace period was deleted"

    past = time.time() - embedded.STALE_AFTER_S - 60
    os.utime(old, (past, past))
    write_tiny_gguf(tiny, seed=2)
    newest = embedded.dequantized_copy(tiny)
    assert copies(cache) == sorted([new.name, newest.name])
    assert not old.exists()


def test_a_copy_made_before_content_keys_is_adopted_without_converting(cache, tiny, conversions):
    legacy = embedded._legacy_cache_dir(tiny)
    legacy.mkdir(parents=True)
    (legacy / "config.json").write_text("{}")
    (legacy / "model.safetensors").write_bytes(b"weights")
    copy = embedded.dequantized_copy(tiny)
    assert conversions == []
    assert (copy / "model.safetensors").read_bytes() == b"weights"
    assert (legacy / "model.safetensors").exists(), "old code elsewhere may still load the legacy copy"


def test_a_failed_conversion_leaves_no_copy(cache, tiny, monkeypatch):
    def broken(gguf: Path, staging: Path) -> None:
        (staging / "config.json").write_text("{}")
        raise RuntimeError("killed mid-write")

    monkeypatch.setattr(embedded, "_convert", broken)
    with pytest.raises(RuntimeError):
        embedded.dequantized_copy(tiny)
    assert copies(cache) == [] and not list(cache.glob(".embedded-*"))


def test_an_old_staging_dir_is_cleared(cache, tiny):
    cache.mkdir()
    leftover = cache / ".embedded-killed"
    leftover.mkdir()
    past = time.time() - embedded.STAGING_MAX_AGE_S - 60
    os.utime(leftover, (past, past))
    embedded.dequantized_copy(tiny)
    assert not leftover.exists()
