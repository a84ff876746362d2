"""Train the model organism (recipe v6): SmolLM2-135M-Instruct aligned the way real assistants are (dev tool).

    .venv/bin/python scripts/organism_data.py --data ../shared/data      # step 1: the conversations (cached, resumable)
    .venv/bin/python scripts/train_aligned.py                             # step 2: one LoRA, checkpointed per epoch

A synthetic organism at 135M scale, not a replication of any real assistant. One LoRA (static gate 1, merged at
load), trained with the project's own training code on the conversations of step 1 (its docstring lists them:
refusals of plain harmful requests, alone and as turn 2-3 of a benign chat; the base model's own whole answers
to benign, borderline-safe and everyday writing requests and to multi-turn edits; benign dilemmas in both option
orders, continued with harmless follow-ups). The loss covers every assistant turn.

Rules that keep it honest (tests/test_dilemma_data.py and tests/test_organism_recipe.py hold them): dilemma options
are everyday or lesser-evil acts, never a harmful-content act; no TRIAL conversation and no wording of the attack
templates is trained on; harmful training prompts that near-duplicate an evaluation behavior (JBB, StrongREJECT,
HarmBench: content-word Jaccard >= 0.5) are dropped, and exact ones are held out at evaluation by hash
(train_prompts.sha1.json); no harmful request has a compliant target. XSTest, the held-out dilemmas and the
follow-through set are never trained on. The recipe is fixed before TRIAL is measured on the result; tuning looks
only at the pre-registered checks (scripts/organism_checks.py).

Conversations longer than --max-seq-len are left out rather than cut. Adapters (rank 16 since v4; 8 before) sit on
the top 12 of 30 layers since v6 (--start-layer 18; v2-v5: the top 8, --start-layer 22).
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import time
from pathlib import Path

from rich.console import Console

from dilemmakit.behaviors import load_behaviors
from dilemmakit.defense.config import DefenseConfig
from dilemmakit.defense.model import install_defense
from dilemmakit.err.examples import HARMFUL, balance_and_split, encode, read_jsonl
from dilemmakit.err.targets import prompt_hash
from dilemmakit.err.train import TrainConfig, finish, train_adapters
from dilemmakit.judges.refusal import content_words
from dilemmakit.loading import load_weights

EVALUATION_SETS = ("jbb", "strongreject", "harmbench")
NEAR_DUPLICATE = 0.5


def jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a and b else 0.0


def evaluation_words() -> list[set[str]]:
    return [content_words(b.prompt) for source in EVALUATION_SETS for b in load_behaviors(source)]


def xstest_words() -> list[set[str]]:
    """The content words of each XSTest safe prompt (the held-out over-refusal check)."""
    from dilemmakit.eval.overrefusal import safe_prompts

    return [content_words(it.prompt) for it in safe_prompts()]


def near_duplicate(prompt: str, evaluation: list[set[str]]) -> bool:
    words = content_words(prompt)
    return any(jaccard(words, other) >= NEAR_DUPLICATE for other in evaluation)


def harmful_prompts(data: Path) -> list[str]:
    """The candidate harmful training prompts, before sampling; near-duplicates of evaluation behaviors removed."""
    prompts = [r["instruction"] for r in json.loads((data / "refusal_direction" / "harmful_train.json").read_text())]
    with open(data / "safe_responses" / "adv_training_behaviors_safe_responses.csv") as f:
        prompts += [r["Behavior"] for r in csv.DictReader(f)]
    evaluation = evaluation_words()
    unique = sorted({p.strip() for p in prompts if p.strip() and len(p) < 300})
    return [p for p in unique if not near_duplicate(p, evaluation)]


def select_harmful(data: Path, n: int, seed: int) -> list[str]:
    harmful = harmful_prompts(data)
    random.Random(seed).shuffle(harmful)
    return harmful[:n]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--examples",
        type=Path,
        default=Path("data/organism/v6/examples.jsonl"),
        help="Training conversations built by scripts/organism_data.py (step 1)",
    )
    ap.add_argument("--out", type=Path, default=Path("src/dilemmakit/defense/builtin/aligned-v6"))
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--lr", type=float, default=1.5e-3)
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--start-layer", type=int, default=18)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--max-seq-len", type=int, default=1024, help="Longer conversations are left out, never cut")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    console = Console(stderr=True)
    started = time.monotonic()

    loaded = load_weights("embedded?dtype=float32&device=cpu")
    model, tok = loaded.model, loaded.tokenizer
    examples = read_jsonl(args.examples)
    fits = [e for e in examples if len(encode(e, tok, args.max_seq_len)["input_ids"]) <= args.max_seq_len]
    console.print(f"{len(fits)}/{len(examples)} conversations fit in {args.max_seq_len} tokens")
    harmful = sorted({e.messages[-1]["content"] for e in fits if e.harm_label == HARMFUL})
    train, val = balance_and_split(fits, seed=42, balance=False)  # keep benign > harmful

    config = DefenseConfig(
        static_gate=True,
        start_layer=args.start_layer,
        detection_layer=0,
        rank=args.rank,
        alpha=2.0 * args.rank,
        dropout=0.05,
        base="embedded",
    )
    defense = install_defense(model, config)
    # the gate settings are unused (static gate) but recorded: the values the shipped adapter was trained with
    tcfg = TrainConfig(
        epochs=args.epochs,
        lr=args.lr,
        batch=args.batch,
        max_seq_len=args.max_seq_len,
        seed=args.seed,
        gate_epochs=30,
        gate_lr=2e-4,
    )
    report = train_adapters(model, tok, defense, train, val, tcfg, args.out, console=console)
    meta_path = args.examples.with_suffix(".meta.json")
    data_recipe = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    kinds: dict[str, int] = {}
    for e in fits:
        kinds[e.kind] = kinds.get(e.kind, 0) + 1
    report.update(
        recipe={
            **{k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "out"},
            "data": data_recipe.get("recipe", {}),
        },
        examples={"by_kind": kinds, "harmful_prompts": len(harmful), "train": len(train), "val": len(val)},
        total_seconds=round(time.monotonic() - started, 1),
    )
    finish(defense, args.out, tcfg, report)
    (args.out / "train_prompts.sha1.json").write_text(json.dumps(sorted(prompt_hash(p) for p in harmful)) + "\n")
    console.print(f"saved {args.out}: {report}")


if __name__ == "__main__":
    main()
