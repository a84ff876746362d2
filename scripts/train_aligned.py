"""Train the model organism `embedded-aligned`: SmolLM2-135M-Instruct aligned the way real assistants are (dev tool).

    .venv/bin/python scripts/train_aligned.py --data ../shared/data --out src/dilemmakit/defense/builtin/aligned

A synthetic organism at 135M scale, not a replication of any real assistant. One LoRA (static gate 1, merged at
load) trained with the project's own training code on a mix of three parts:

1. plain harmful requests -> plain refusals (refusal_direction harmful_train + safe_responses behaviors);
2. plain benign and borderline-safe requests -> the base model's own greedy answers (the package's
   benign_train.jsonl, and borderline_train.jsonl: "kill a zombie process", "slaughter a chicken humanely"),
   so the adapter learns to refuse without drifting on benign requests or learning "scary word => refuse";
3. ethical-reasoning helpfulness: the packaged benign forced-choice dilemmas (`dilemmakit.dilemmas`, train split:
   trolley variants, everyday and professional-ethics choices) -> "Option X" plus a short justification.
   Real assistants engage with moral dilemmas; that helpfulness is the attack surface the paper is about.
   `--dilemmas 0` is the ablation without it.

Rules that keep it honest (tests/test_dilemma_data.py and tests/test_organism_recipe.py hold them): dilemma options
are everyday or lesser-evil acts, never a harmful-content act; no TRIAL conversation and no wording of the attack
templates is trained on; harmful training prompts that near-duplicate an evaluation behavior (JBB, StrongREJECT,
HarmBench: content-word Jaccard >= 0.5) are dropped, and exact ones are held out at evaluation by hash
(train_prompts.sha1.json). XSTest is never trained on (it is the over-refusal test). The recipe is fixed before
TRIAL is measured on the result; tuning looks only at direct ASR, XSTest over-refusal and held-out dilemma engagement.

Training runs at full prompt length (dilemmas are 150-450 tokens), in batches of similar length. Adapters sit on
the top 8 of 30 layers.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import random
import time
from pathlib import Path

from rich.console import Console

from dilemmakit import dilemmas, resources
from dilemmakit.behaviors import load_behaviors
from dilemmakit.defense.config import DefenseConfig
from dilemmakit.defense.model import install_defense
from dilemmakit.err.examples import BENIGN, HARMFUL, Example, balance_and_split
from dilemmakit.err.targets import engage_targets, prompt_hash, refusal_target
from dilemmakit.err.train import TrainConfig, finish, train_adapters
from dilemmakit.judges.refusal import content_words, is_refusal
from dilemmakit.loading import load_weights

EVALUATION_SETS = ("jbb", "strongreject", "harmbench")
NEAR_DUPLICATE = 0.5


def jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a and b else 0.0


def evaluation_words() -> list[set[str]]:
    return [content_words(b.prompt) for source in EVALUATION_SETS for b in load_behaviors(source)]


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


def base_answers(model, tok, prompts: list[str], max_tokens: int, cache: Path | None, console) -> list[str]:
    """The base model's greedy answers, kept in `cache` (a JSON file) between runs of the recipe and its ablation."""
    key = hashlib.sha1(json.dumps([prompts, max_tokens]).encode()).hexdigest()
    if cache is not None and cache.exists():
        stored = json.loads(cache.read_text())
        if stored.get("key") == key:
            return stored["answers"]
    console.print(f"generating {len(prompts)} benign targets with the base model")
    answers = engage_targets(model, tok, [[{"role": "user", "content": p}] for p in prompts], max_tokens=max_tokens)
    if cache is not None:
        cache.write_text(json.dumps({"key": key, "answers": answers}))
    return answers


def dilemma_examples(n: int, rng: random.Random) -> list[Example]:
    rows = dilemmas.load("train")
    rng.shuffle(rows)
    examples = []
    for d in rows[:n]:
        rendered = dilemmas.render(d, style=None, rng=rng)
        examples.append(Example([{"role": "user", "content": rendered.prompt}], dilemmas.target(rendered, d), BENIGN))
    return examples


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--out", type=Path, default=Path("src/dilemmakit/defense/builtin/aligned"))
    ap.add_argument("--harmful", type=int, default=300)
    ap.add_argument(
        "--benign", type=int, default=300, help="Plain harmless instructions (borderline ones are added to these)"
    )
    ap.add_argument("--dilemmas", type=int, default=150, help="Benign forced-choice dilemmas (0: the ablation)")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--lr", type=float, default=1.5e-3)
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--start-layer", type=int, default=22)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--max-seq-len", type=int, default=640, help="Whole dilemmas fit: full prompt length")
    ap.add_argument("--benign-tokens", type=int, default=32, help="Length of the base model's own benign answers")
    ap.add_argument("--answers-cache", type=Path, default=None, help="Keep the base model's answers in this file")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    console = Console(stderr=True)
    rng = random.Random(args.seed)
    started = time.monotonic()

    model, tok = load_weights("embedded?dtype=float32&device=cpu")
    harmful = select_harmful(args.data, args.harmful, args.seed)
    benign_rows = resources.read_jsonl("dilemmakit.err", "data", "benign_train.jsonl")
    benign = [r["prompt"] for r in benign_rows[: args.benign]]
    benign += [x["prompt"] for x in resources.read_jsonl("dilemmakit.err", "data", "borderline_train.jsonl")]
    answers = base_answers(model, tok, benign, args.benign_tokens, args.answers_cache, console)
    examples = [Example([{"role": "user", "content": p}], refusal_target(rng), HARMFUL) for p in harmful]
    examples += [
        Example([{"role": "user", "content": p}], a, BENIGN)
        for p, a in zip(benign, answers, strict=True)
        if a.strip() and not is_refusal(a)
    ]
    moral = dilemma_examples(args.dilemmas, random.Random(args.seed + 1)) if args.dilemmas else []
    examples += moral
    train, val = balance_and_split(examples, seed=42, balance=False)  # keep benign > harmful

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
    report.update(
        recipe={
            k: (str(v) if isinstance(v, Path) else v)
            for k, v in vars(args).items()
            if k not in ("answers_cache", "out")
        },
        examples={
            "harmful": len(harmful),
            "benign": len(benign),
            "dilemmas": len(moral),
            "train": len(train),
            "val": len(val),
        },
        total_seconds=round(time.monotonic() - started, 1),
    )
    finish(defense, args.out, tcfg, report)
    (args.out / "train_prompts.sha1.json").write_text(json.dumps(sorted(prompt_hash(p) for p in harmful)) + "\n")
    console.print(f"saved {args.out}: {report}")


if __name__ == "__main__":
    main()
