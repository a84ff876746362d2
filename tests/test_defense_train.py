"""Training pieces on a tiny random Llama with a real tokenizer: the loss, both stages, checkpoints."""

from __future__ import annotations

import os

import pytest
import torch

from dilemmakit.defense import DefenseConfig, install_defense
from dilemmakit.err.examples import BENIGN, GATE_ONLY, HARMFUL, Example, balance_and_split, collate, encode
from dilemmakit.err.train import CHECKPOINT, TrainConfig, class_weights, reply_loss, train_adapters, train_gate
from dilemmakit.errors import UserError
from tests.helpers import tiny_llama


@pytest.fixture(scope="module")
def tok():
    from transformers import AutoTokenizer

    from dilemmakit.loading.embedded import dequantized_copy

    return AutoTokenizer.from_pretrained(str(dequantized_copy()))


def tiny(tok):
    return tiny_llama(vocab_size=len(tok))


def examples(n: int = 8) -> list[Example]:
    harm = [
        Example([{"role": "user", "content": f"harmful request number {i} zzz"}], "I can't help with that.", HARMFUL)
        for i in range(n)
    ]
    ok = [
        Example([{"role": "user", "content": f"tell me a fact about cats {i}"}], "Cats sleep a lot.", BENIGN)
        for i in range(n // 2)
    ]
    return harm + ok


def test_encode_masks_the_prompt_and_pools_at_its_last_token(tok):
    e = encode(examples()[0], tok, 64)
    n_prompt = e["labels"].count(-100)
    assert e["pool"] == n_prompt - 1
    assert e["labels"][n_prompt:] == e["input_ids"][n_prompt:]
    assert e["input_ids"][-1] == tok.eos_token_id


def test_balance_oversamples_and_splits_with_seed():
    train, val = balance_and_split(examples(10), seed=42)
    both = train + val
    assert sum(e.harm_label for e in both) == sum(1 - e.harm_label for e in both) == 10
    assert [e.messages for e in balance_and_split(examples(10), seed=42)[1]] == [e.messages for e in val]


def test_reply_loss_matches_the_model_loss(tok):
    model = tiny(tok)
    b = collate([encode(e, tok, 64) for e in examples()[:3]], tok.pad_token_id or 0)
    ours = reply_loss(model, b, "cpu")
    theirs = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"], labels=b["labels"]).loss
    assert torch.allclose(ours, theirs, atol=1e-4)


def test_stage1_learns_the_gate_and_stage2_trains_only_adapters(tok, tmp_path):
    model = tiny(tok)
    defense = install_defense(
        model, DefenseConfig(detection_layer=2, start_layer=2, rank=2, alpha=4, head_hidden=(32, 16), head_dropout=0.0)
    )
    base_before = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" not in n}
    cfg = TrainConfig(gate_epochs=60, gate_lr=3e-3, epochs=1, lr=1e-2, batch=4, max_seq_len=64)
    data = examples()
    report = train_gate(model, tok, defense, data, [], cfg)
    assert report["train_acc"] >= 8 / 12
    b = collate([encode(e, tok, 64) for e in data], tok.pad_token_id or 0)
    scores = defense.gate_scores(model, b["input_ids"], b["attention_mask"], b["pool"])
    assert scores[b["harm"] == 1].mean() > scores[b["harm"] == 0].mean() + 0.05  # it learned to tell them apart
    gate_before = {k: v.clone() for k, v in defense.gate.state_dict().items()}
    b_before = [a.lora_B.detach().clone() for a in defense.adapters.values()]
    train_adapters(model, tok, defense, data, data[:2], cfg, tmp_path)
    assert all(torch.equal(v, defense.gate.state_dict()[k]) for k, v in gate_before.items())
    assert any(not torch.equal(b, a.lora_B) for b, a in zip(b_before, defense.adapters.values(), strict=False))
    assert all(torch.equal(p, base_before[n]) for n, p in model.named_parameters() if "lora_" not in n)
    assert (tmp_path / CHECKPOINT).exists()


def test_resume_skips_finished_epochs(tok, tmp_path):
    model = tiny(tok)
    defense = install_defense(model, DefenseConfig(static_gate=True, start_layer=3, rank=2, alpha=4))
    cfg = TrainConfig(epochs=1, lr=1e-2, batch=4, max_seq_len=64)
    first = train_adapters(model, tok, defense, examples(), [], cfg, tmp_path)
    again = train_adapters(model, tok, defense, examples(), [], cfg, tmp_path)
    assert first["loss_by_epoch"] and again["loss_by_epoch"] == []


class _Planted:
    """A pickled object that makes a directory when unpickled: what a hostile checkpoint.pt could hold."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (os.mkdir, (self.path,))


def test_resume_reads_the_checkpoint_as_weights_only(tok, tmp_path):
    model = tiny(tok)
    defense = install_defense(model, DefenseConfig(static_gate=True, start_layer=3, rank=2, alpha=4))
    cfg = TrainConfig(epochs=1, lr=1e-2, batch=4, max_seq_len=64)
    train_adapters(model, tok, defense, examples(), [], cfg, tmp_path / "run")
    state = torch.load(tmp_path / "run" / CHECKPOINT, map_location="cpu", weights_only=True)  # plain values only
    assert state["epoch"] == 1 and state["optimizer"]["state"] and state["train_config"] == cfg.model_dump()
    planted = tmp_path / "planted"
    torch.save({"epoch": 1, "train_config": cfg.model_dump(), "x": _Planted(planted)}, tmp_path / CHECKPOINT)
    with pytest.raises(UserError, match="cannot resume from .*delete it"):
        train_adapters(model, tok, defense, examples(), [], cfg, tmp_path)
    assert not planted.exists()  # the object was never unpickled


def test_class_weights_are_ones_on_balanced_labels_and_even_out_the_classes_otherwise():
    balanced = torch.tensor([1.0, 0.0, 1.0, 0.0])
    assert torch.equal(class_weights(balanced), torch.ones(4))
    skewed = torch.tensor([1.0] + [0.0] * 4)
    w = class_weights(skewed)
    assert float(w[skewed == 1].sum()) == pytest.approx(float(w[skewed == 0].sum()))
    assert float(w.mean()) == pytest.approx(1.0)


def test_gate_only_examples_train_the_gate_and_are_skipped_by_the_adapters(tok, tmp_path):
    gate_only = [
        Example([{"role": "user", "content": f"write a poem about spring {i}"}], "", BENIGN, GATE_ONLY)
        for i in range(6)
    ]
    cfg = TrainConfig(gate_epochs=5, epochs=1, lr=1e-2, batch=4, max_seq_len=64)
    trained = []
    for data in (examples(), examples() + gate_only):
        model = tiny(tok)
        torch.manual_seed(0)
        defense = install_defense(model, DefenseConfig(static_gate=True, start_layer=3, rank=2, alpha=4))
        train_adapters(model, tok, defense, data, gate_only, cfg, tmp_path / str(len(data)))
        trained.append([a.lora_B.detach().clone() for a in defense.adapters.values()])
    assert all(torch.equal(a, b) for a, b in zip(*trained, strict=True))  # same adapters: no reply to learn there
    model = tiny(tok)
    defense = install_defense(model, DefenseConfig(detection_layer=2, start_layer=2, rank=2, alpha=4))
    report = train_gate(model, tok, defense, examples() + gate_only, [], cfg)
    assert 0.0 <= report["train_acc"] <= 1.0  # the prompt-only examples are read as benign features
