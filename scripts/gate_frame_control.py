"""Does an ERR gate read harm or the TRIAL frame? (dev tool; the control behind builtin/README.md's ERR section)

Scores the gate of each defended spec on TRIAL openings built around held-out harmful JBB behaviors and around
harmless requests (`benign_test.jsonl`), in both shapes: the attack's abstract-act opening (the same story
whatever the request) and the opening with the request embedded. A gate that fires as often on the harmless
requests reads the frame, not the harm.

    .venv/bin/python scripts/gate_frame_control.py embedded-err embedded-err-v1 --n 30
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random

import torch

from dilemmakit.attacks.trial import offline_opening
from dilemmakit.behaviors import Behavior
from dilemmakit.defense.loading import resolve_defense
from dilemmakit.err.evaluate import benign_test, held_out
from dilemmakit.loading import defense_refs, load_model


def openings(prompts: list[str], embed: bool) -> list[str]:
    return [
        offline_opening(Behavior(id=str(i), prompt=p), rng=random.Random(i), embed_request=embed).message
        for i, p in enumerate(prompts)
    ]


def fires(model, prompt: str) -> bool:
    tok, defense = model.tokenizer, model.defense
    text = tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=False)
    ids = torch.tensor([tok(text, add_special_tokens=False)["input_ids"]])
    return float(defense.gate_scores(model.model, ids, torch.ones_like(ids))[0]) > defense.config.threshold


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("specs", nargs="+", help="Defended model specs (a gated defense)")
    ap.add_argument("--n", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    for spec in args.specs:
        trained: set[str] = set()
        for ref in defense_refs(spec):
            path = resolve_defense(ref) / "train_prompts.sha1.json"
            trained |= set(json.loads(path.read_text())) if path.exists() else set()
        harmful = [b.prompt for b in held_out("jbb", args.n, args.seed, trained)]
        harmless = benign_test(100)[-args.n :]  # the KL and gate-accuracy prompts are the first ones
        model = load_model(spec)

        def gated(prompts: list[str], model=model) -> str:
            return f"{sum(map(lambda p: fires(model, p), prompts))}/{len(prompts)}"

        print(
            f"{spec}: gate fires on abstract openings: harmful {gated(openings(harmful, False))}, harmless "
            f"{gated(openings(harmless, False))}; request embedded: harmful {gated(openings(harmful, True))}, "
            f"harmless {gated(openings(harmless, True))}",
            flush=True,
        )
        asyncio.run(model.aclose())


if __name__ == "__main__":
    main()
