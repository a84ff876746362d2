"""Training examples for defenses: a conversation, the assistant reply to learn, and a harm label.

Stored as JSONL (`train.jsonl`, `val.jsonl`) so data built once can be inspected and reused. By default only the
last assistant reply is trained on (prompt tokens get label -100), as in the official ERR data loader: ERR's
multi-turn examples carry an attacked model's own earlier replies, which must not be learned. An example with
`all_turns` set (the organism's ordinary conversations) is trained on every assistant turn.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path

from dilemmakit.errors import UserError
from dilemmakit.models.base import Message
from dilemmakit.userdata import ENCODING, loads_json

HARMFUL, BENIGN = 1, 0
GATE_ONLY = "gate"  # kind of a prompt-only example: it trains the gate (stage 1); the adapters (stage 2) skip it


@dataclass
class Example:
    messages: list[Message]
    target: str
    harm_label: int  # 1 = harmful (Explain / refuse), 0 = benign (Engage)
    kind: str = "plain"  # plain | trial | trial_multi | dilemma | gate (GATE_ONLY: no target)
    all_turns: bool = False  # loss on every assistant turn of `messages` too, not only on `target`


def with_reply(examples: list[Example]) -> list[Example]:
    """The examples that have a reply to learn: all but the gate-only ones."""
    return [e for e in examples if e.kind != GATE_ONLY]


def write_jsonl(path: Path, examples: list[Example]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        for ex in examples:
            f.write(json.dumps(asdict(ex)) + "\n")


def read_jsonl(path: Path) -> list[Example]:
    if not path.exists():
        raise UserError(f"{path} does not exist: build it with `dilemma defend data`")
    out = []
    for n, line in enumerate(path.read_text(encoding=ENCODING).splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = loads_json(line)
            out.append(
                Example(
                    messages=row["messages"],
                    target=row["target"],
                    harm_label=int(row["harm_label"]),
                    kind=row.get("kind", "plain"),
                    all_turns=bool(row.get("all_turns", False)),
                )
            )
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise UserError(f"{path}:{n}: not a training example ({exc})") from None
    return out


def balance_and_split(
    examples: list[Example], *, seed: int = 42, val_fraction: float = 0.1, balance: bool = True
) -> tuple[list[Example], list[Example]]:
    """Oversample the smaller class to 1:1 (unless `balance` is off), shuffle with `seed`, split train/val
    (official: 42, 90/10)."""
    rng = random.Random(seed)
    harmful = [e for e in examples if e.harm_label == HARMFUL]
    benign = [e for e in examples if e.harm_label == BENIGN]
    if balance and harmful and benign:
        small, big = sorted((harmful, benign), key=len)
        small = small + [rng.choice(small) for _ in range(len(big) - len(small))]
        examples = small + big
    examples = list(examples)
    rng.shuffle(examples)
    n_val = max(1, int(len(examples) * val_fraction)) if len(examples) >= 10 else 0
    return examples[n_val:], examples[:n_val]


def encode(example: Example, tokenizer, max_seq_len: int, max_target_tokens: int = 160) -> dict:
    """input_ids, labels (-100 on the prompt) and the index of the last prompt token."""
    if example.all_turns:
        return encode_all_turns(example, tokenizer)
    prompt = tokenizer.apply_chat_template(example.messages, add_generation_prompt=True, tokenize=False)
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    target_ids = tokenizer(example.target, add_special_tokens=False)["input_ids"][:max_target_tokens]
    target_ids = target_ids + [tokenizer.eos_token_id]
    keep = max(8, max_seq_len - len(target_ids))
    prompt_ids = prompt_ids[-keep:]  # the end of the conversation matters most (the gate pools there)
    ids = prompt_ids + target_ids
    labels = [-100] * len(prompt_ids) + target_ids
    return {"input_ids": ids, "labels": labels, "pool": len(prompt_ids) - 1, "harm": example.harm_label}


def encode_all_turns(example: Example, tokenizer) -> dict:
    """The whole conversation, every assistant turn labelled and none cut: a truncated target teaches a model
    to stop mid-answer. Each turn is tokenized apart so the labels line up with the chat template's text."""
    conversation = [*example.messages, {"role": "assistant", "content": example.target}]
    ids: list[int] = []
    labels: list[int] = []
    done = ""  # the template text covered so far
    pool = 0
    for i, message in enumerate(conversation):
        if message["role"] != "assistant":
            continue
        prompt = tokenizer.apply_chat_template(conversation[:i], add_generation_prompt=True, tokenize=False)
        if not prompt.startswith(done):
            raise ValueError("the chat template does not extend a conversation's text turn by turn")
        context = tokenizer(prompt[len(done) :], add_special_tokens=False)["input_ids"]
        reply = tokenizer(message["content"], add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        ids += context + reply
        labels += [-100] * len(context) + reply
        pool = len(ids) - len(reply) - 1
        done = prompt + message["content"] + tokenizer.eos_token
    return {"input_ids": ids, "labels": labels, "pool": pool, "harm": example.harm_label}


def collate(batch: list[dict], pad_id: int):
    import torch

    width = max(len(b["input_ids"]) for b in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), -100, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for i, b in enumerate(batch):
        n = len(b["input_ids"])
        ids[i, :n] = torch.tensor(b["input_ids"])
        labels[i, :n] = torch.tensor(b["labels"])
        mask[i, :n] = 1
    pool = torch.tensor([b["pool"] for b in batch])
    harm = torch.tensor([float(b["harm"]) for b in batch])
    return {"input_ids": ids, "labels": labels, "attention_mask": mask, "pool": pool, "harm": harm}
