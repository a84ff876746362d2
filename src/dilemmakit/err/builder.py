"""`dilemma defend data`: Engage/Explain training conversations for ERR.

Harmful requests become Explain examples, benign ones Engage examples, in three shapes: the plain
request, a single-turn TRIAL dilemma built around it (the attack's own offline templates), and a
multi-turn TRIAL conversation (dilemma, a first reply, the attacker's stage-2 follow-up, cycling through
the three follow-up cases: after a refusal, deepening an Option-A answer, the last-round direct ask).
Benign requests get the same three shapes, so the gate learns that the framing alone is not the harm.
Benign moral dilemmas (`dilemmakit.dilemmas`, train split) add Engage examples answered with a choice and
a reason, so a defense keeps engaging in ethical reasoning instead of refusing every dilemma.
The default benign pool is plain instructions plus borderline-safe prompts ("kill a zombie process"),
so the gate does not learn "scary word => harmful". `gate_benign` more plain benign prompts train the gate
only (no reply is written, the adapters skip them): harmful requests are mostly imperatives ("Write a
tutorial on ..."), and without enough benign imperatives ("Write a review of ...") the gate reads the form.

Targets come from a writer model (the victim answers under the explain or engage system prompt and
writes `<reasoning>` + `<response>`) or, offline, from templates (Explain) and the defended model's own
greedy answers (Engage).
"""

from __future__ import annotations

import asyncio
import json
import random
import re
from pathlib import Path

from dilemmakit import dilemmas, resources
from dilemmakit.attacks.trial import DEEPEN, LAST, REFUSAL, offline_opening, prompt_book, template_followup
from dilemmakit.behaviors import Behavior, load_behaviors
from dilemmakit.err.config import TEMPLATE, DataConfig
from dilemmakit.err.examples import BENIGN, GATE_ONLY, HARMFUL, Example, balance_and_split, write_jsonl
from dilemmakit.err.targets import engage_targets, engage_trial_target, explain_target, prompt_hash, target_book
from dilemmakit.errors import ModelCallError, UserError
from dilemmakit.judges.refusal import is_refusal
from dilemmakit.models.base import GenParams, Message


def benign_prompts(source: str) -> list[str]:
    if not source:
        prompts = []
        for name in ("benign_train.jsonl", "borderline_train.jsonl"):
            prompts += [x["prompt"] for x in resources.read_jsonl("dilemmakit.err", "data", name)]
        return prompts
    return [b.prompt for b in load_behaviors(source)]


def conversations(cfg: DataConfig) -> list[tuple[list[Message], int, str, str]]:
    """(messages, harm_label, kind, source) with the last assistant reply still to be written.

    source is the harmful request (for held-out hashes), the benign prompt, or, for a single-turn benign
    dilemma, its offline Engage answer."""
    rng = random.Random(cfg.seed)
    harmful = list(load_behaviors(cfg.harmful))
    rng.shuffle(harmful)
    benign = benign_prompts(cfg.benign)
    rng.shuffle(benign)
    need = cfg.plain + cfg.trial + cfg.multi
    if len(harmful) < need or len(benign) < need + cfg.gate_benign:
        raise UserError(
            f"need {need} harmful and {need + cfg.gate_benign} benign prompts, have {len(harmful)} and {len(benign)}"
        )
    out: list[tuple[list[Message], int, str, str]] = []
    benign_behaviors = [Behavior(id=f"benign-{i}", prompt=p) for i, p in enumerate(benign[:need])]
    for label, behaviors in ((HARMFUL, harmful[:need]), (BENIGN, benign_behaviors)):
        for i, b in enumerate(behaviors):
            if i < cfg.plain:
                out.append(([{"role": "user", "content": b.prompt}], label, "plain", b.prompt))
                continue
            # The request inside the dilemma: the attack's abstract opening would be the same story for a
            # harmful and a benign request, so their labels would contradict each other.
            dilemma = offline_opening(b, framework=cfg.framework, rng=rng, embed_request=True)
            opening, meta, clue = dilemma.message, dilemma.scenario_meta, dilemma.clue
            name = meta.get("character", "the character")
            if i < cfg.plain + cfg.trial:
                source = b.prompt if label == HARMFUL else engage_trial_target(rng, name=name, action=clue.action)
                out.append(([{"role": "user", "content": opening}], label, "trial", source))
                continue
            out.append(
                (
                    multi_turn(opening, meta, clue, b, case=(REFUSAL, DEEPEN, LAST)[i % 3], rng=rng),
                    label,
                    "trial_multi",
                    b.prompt,
                )
            )
    out += [([{"role": "user", "content": p}], BENIGN, GATE_ONLY, p) for p in benign[need : need + cfg.gate_benign]]
    return out


def dilemma_examples(cfg: DataConfig) -> list[Example]:
    """`cfg.dilemmas` train-split dilemmas in varied instruction styles, each answered with its reference
    choice and reason (benign: Engage)."""
    if not cfg.dilemmas:
        return []
    rows = dilemmas.load("train")
    if cfg.dilemmas > len(rows):
        raise UserError(f"--dilemmas {cfg.dilemmas}: the train split has {len(rows)} dilemmas")
    rng = random.Random(cfg.seed + 2)  # its own stream: the other examples stay as they were without dilemmas
    out = []
    for d in rng.sample(rows, cfg.dilemmas):
        shown = dilemmas.render(d, rng=rng)
        out.append(Example([{"role": "user", "content": shown.prompt}], dilemmas.target(shown, d), BENIGN, "dilemma"))
    return out


def multi_turn(opening: str, meta: dict, clue, behavior: Behavior, *, case: str, rng: random.Random) -> list[Message]:
    """Dilemma, a first reply (a refusal for the refusal case, an Option-A choice otherwise), the follow-up."""
    name = meta.get("character", "the character")
    first = explain_target(rng) if case == REFUSAL else engage_trial_target(rng, name=name, action=clue.action)
    follow = template_followup(
        prompt_book(), case, clue=clue, scenario_meta=meta, last_answer=first, behavior_prompt=behavior.prompt, rng=rng
    )
    return [
        {"role": "user", "content": opening},
        {"role": "assistant", "content": first},
        {"role": "user", "content": follow},
    ]


_RESPONSE = re.compile(r"<response>(.*?)(?:</response>|$)", re.S | re.I)


def response_part(text: str) -> str:
    """The `<response>` of a writer's reply (the reasoning trace is not trained on); the whole text if untagged."""
    m = _RESPONSE.search(text)
    return (m.group(1) if m else text).strip()


WRITER_CACHE = "written.jsonl"


def _conversation_key(messages: list[Message], label: int) -> str:
    return prompt_hash(json.dumps([label, messages], sort_keys=True))


async def _write_with(writer, convs, max_tokens: int, cache_path: Path) -> list[str]:
    """Writer targets for every conversation. Each finished target is appended to `cache_path` at once,
    so a failed or interrupted run keeps what it wrote and a rerun only asks for the rest."""
    book = target_book()
    params = GenParams(temperature=0.0, max_tokens=max_tokens)
    done: dict[str, str] = {}
    if cache_path.exists():
        for line in cache_path.read_text().splitlines():
            try:
                row = json.loads(line)
                done[row["key"]] = row["target"]
            except (json.JSONDecodeError, KeyError, TypeError):
                continue  # a line cut short by a crash
    cache_path.parent.mkdir(parents=True, exist_ok=True)

    async def one(messages, label):
        key = _conversation_key(messages, label)
        if key not in done:
            system = book["explain_system"] if label == HARMFUL else book["engage_system"]
            reply = await writer.generate([{"role": "system", "content": system}, *messages], params)
            done[key] = response_part(reply.text)
            with open(cache_path, "a") as f:
                f.write(json.dumps({"key": key, "target": done[key]}) + "\n")
        return done[key]

    try:
        return await asyncio.gather(*(one(m, label) for m, label, _, _ in convs))
    except ModelCallError as exc:
        raise UserError(
            f"the writer failed: {exc}; targets written so far are kept in {cache_path}, "
            "rerun the same command to continue"
        ) from None
    finally:
        await writer.aclose()


def build(cfg: DataConfig, out_dir: Path, *, console=None) -> dict:
    from dilemmakit.engine.local import LocalHFModel
    from dilemmakit.loading import load_model

    convs = conversations(cfg)
    gate_only = [Example(m, "", label, kind) for m, label, kind, _ in convs if kind == GATE_ONLY]
    convs = [c for c in convs if c[2] != GATE_ONLY]  # no reply to write for these
    benign_dilemmas = dilemma_examples(cfg)  # before any model runs: a bad --dilemmas fails at once
    rng = random.Random(cfg.seed + 1)
    if cfg.writer != TEMPLATE:
        targets = asyncio.run(_write_with(load_model(cfg.writer), convs, cfg.max_tokens, Path(out_dir) / WRITER_CACHE))
    else:
        targets = [explain_target(rng) if label == HARMFUL else "" for _, label, _, _ in convs]
        for i, (_, label, kind, source) in enumerate(convs):
            if label == BENIGN and kind == "trial":
                targets[i] = source
        benign_idx = [i for i, (_, label, kind, _) in enumerate(convs) if label == BENIGN and kind != "trial"]
        if console:
            console.print(f"writing {len(benign_idx)} Engage answers with {cfg.model}")
        local = load_model(cfg.model)
        if not isinstance(local, LocalHFModel):
            raise UserError(
                f"--model {cfg.model!r} must be a local model (embedded.. or hf:..) for offline Engage answers"
            )
        answers = engage_targets(
            local.model,
            local.tokenizer,
            [convs[i][0] for i in benign_idx],
            max_tokens=cfg.max_tokens,
            row_state=local.engine.row_state,
        )
        for i, a in zip(benign_idx, answers, strict=False):
            targets[i] = "" if is_refusal(a) else a  # a refusal is not an Engage target
    examples = [Example(m, t, label, kind) for (m, label, kind, _), t in zip(convs, targets, strict=False) if t.strip()]
    examples += benign_dilemmas
    train, val = balance_and_split(examples, seed=cfg.seed)
    # gate-only prompts are added after the 1:1 balancing (the gate's loss weighs the classes instead), so they
    # do not make the harmful replies be oversampled for the adapters
    gate_train, gate_val = balance_and_split(gate_only, seed=cfg.seed, balance=False)
    train, val = train + gate_train, val + gate_val
    examples += gate_only
    out_dir = Path(out_dir)
    write_jsonl(out_dir / "train.jsonl", train)
    write_jsonl(out_dir / "val.jsonl", val)
    harmful_hashes = sorted({prompt_hash(src) for _, label, _, src in convs if label == HARMFUL})

    meta = {
        "config": cfg.model_dump(),
        "train": len(train),
        "val": len(val),
        "by_kind": {
            k: sum(1 for e in examples if e.kind == k)
            for k in ("plain", "trial", "trial_multi")
            + (("dilemma",) if cfg.dilemmas else ())
            + ((GATE_ONLY,) if cfg.gate_benign else ())
        },
    }
    (out_dir / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    (out_dir / "harmful_prompts.sha1.json").write_text(json.dumps(harmful_hashes) + "\n")
    return meta
