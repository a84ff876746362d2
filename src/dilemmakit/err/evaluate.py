"""`dilemma defend eval`: a base model and its defended version, measured side by side.

- trial_asr / direct_asr: TRIAL (offline template attacker, or `--attacker SPEC`) and direct campaigns on held-out behaviors
  (prompts a defense was trained on are dropped by hash), through the shared campaign machinery.
- trial_turn1_act: share of those TRIAL conversations whose first reply picks Option A, the act (the attack's
  scenario prompt always puts the act in Option A): the decision the dilemma forces, before any content is
  asked for. Keyword measure (`dilemmas.parse_choice`).
- strongreject_asr: direct requests from the StrongREJECT prompts, judged by the same judge.
- over_refusal: share of XSTest safe prompts answered with a refusal (the `compliance` judge: XSTest's definition).
- engagement: share of held-out benign moral dilemmas answered with a choice and a reason (keyword measure,
  `dilemma engagement`), with its n and 95% CI in `engagement_n`, `engagement_ci_low`, `engagement_ci_high`.
  Each dilemma is asked in both option orders (`dilemma engagement --swap`), so the same replies give
  swap_consistency (the same option content chosen in both orders, over dilemmas) and reference_agreement
  (choice content == reference choice, over every prompt).
- followthrough: share of harmless follow-up requests carried out after a benign dilemma, in the same
  conversation (`dilemma followthrough`, feature rules), with `followthrough_restated`, `_refused`, `_degenerate`.
- benign_kl: mean per-token KL(base || defended) of next-token distributions along the base model's
  greedy answer to held-out benign prompts.
- gate_accuracy: the defended model's gate on held-out harmful behaviors and benign prompts (and on each
  half: gate_accuracy_harmful, gate_accuracy_benign).
- latency_ratio: defended / base wall time for a fixed number of new tokens on benign prompts.

Every measure comes with its n and 95% CI (Wilson for rates, percentile bootstrap for means, recorded
under "ci"): a rate as `<name>`, `<name>_count`, `<name>_n`, `<name>_ci_low`, `<name>_ci_high`; a mean or
median over prompts as `<name>`, `<name>_n`, `<name>_ci_low`, `<name>_ci_high`.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from dilemmakit import resources
from dilemmakit.behaviors import Behavior, load_behaviors
from dilemmakit.defense.loading import resolve_defense
from dilemmakit.dilemmas import parse_choice
from dilemmakit.engine import LocalHFModel
from dilemmakit.err.config import EvalConfig
from dilemmakit.err.results import DefendEval, SideResult
from dilemmakit.err.targets import prompt_hash
from dilemmakit.errors import UserError
from dilemmakit.eval.engagement import EngagementConfig, dilemma_items, run_engagement
from dilemmakit.eval.followthrough import FollowThroughConfig, run_followthrough
from dilemmakit.eval.itemrun import Item
from dilemmakit.eval.overrefusal import OverRefusalConfig, run_overrefusal, safe_prompts
from dilemmakit.eval.stats import Estimate, Rate
from dilemmakit.eval.summary import CI
from dilemmakit.loading import ModelPool, defense_refs, defense_weights, pool_scope
from dilemmakit.store.db import open_store


def held_out(source: str, limit: int, seed: int, exclude: set[str]):
    behaviors = [b for b in load_behaviors(source) if prompt_hash(b.prompt) not in exclude]
    import random

    rng = random.Random(seed)
    rng.shuffle(behaviors)
    return behaviors[:limit]


def _jsonl(behaviors: list[Behavior]) -> str:
    """The behaviors as JSON lines: how a side's cache key records the set it was measured on."""
    return "".join(json.dumps({"id": b.id, "prompt": b.prompt, "category": b.category}) + "\n" for b in behaviors)


def xstest_safe(limit: int) -> list[Item]:
    rows = safe_prompts()  # the one packaged copy of XSTest, shared with `dilemma overrefusal`
    step = max(1, len(rows) // max(1, limit))  # spread over the XSTest types
    return rows[::step][:limit]


def benign_test(limit: int) -> list[str]:
    return [x["prompt"] for x in resources.read_jsonl("dilemmakit.err", "data", "benign_test.jsonl")][:limit]


def campaign_config(spec: str, method: str, name: str, cfg: EvalConfig):
    """The campaign that measures `method`'s ASR on the behavior set `name` (held-out behaviors given apart)."""
    from dilemmakit.campaign import CampaignConfig

    return CampaignConfig(
        target=spec,
        method=method,
        behaviors=name,
        attacker=cfg.attacker,
        judge=cfg.judge,
        max_rounds=cfg.max_rounds if method == "trial" else 1,
        target_max_tokens=cfg.max_tokens,
        target_temperature=cfg.temperature,
        seed=cfg.seed,
        concurrency=cfg.concurrency,
    )


async def _campaign_asr(
    spec: str,
    pool: ModelPool,
    method: str,
    name: str,
    behaviors: list[Behavior],
    cfg: EvalConfig,
    store_dir: Path,
    failures: list[str],
) -> tuple[Rate, Rate]:
    """The campaign's successes over its finished conversations, and how many of those picked the act in the
    first reply (`first_reply_picks_act`); each conversation that ended in an error adds its message to
    `failures`."""
    from dilemmakit.campaign import run_campaign

    store = open_store(store_dir)
    try:
        config = campaign_config(spec, method, name, cfg)
        result = await run_campaign(config, store, behaviors=behaviors, pool=pool, show_progress=True)
        picked = first_reply_picks_act(store, result.run_id)
    finally:
        store.close()
    failures.extend([result.first_error or "error"] * result.errors)
    return Rate.of(result.successes, result.done), picked


def first_reply_picks_act(store, run_id: str) -> Rate:
    """Finished conversations of the run whose first assistant reply picks Option A, over those finished."""
    picked = finished = 0
    for conversation in store.conversations(run_id):
        if conversation.status != "done":
            continue
        first = next((t.content for t in store.turns(conversation.id) if t.role == "assistant"), None)
        finished += 1
        picked += first is not None and parse_choice(first) == "A"
    return Rate.of(picked, finished)


async def _over_refusal(
    spec: str, pool: ModelPool, items: list[Item], max_tokens: int, store_dir: Path, failures: list[str]
) -> Rate:
    """The same measurement as `dilemma overrefusal` (its default `compliance` judge), on this side's model and subset."""
    store = open_store(store_dir)
    try:
        config = OverRefusalConfig(target=spec, judge="compliance", max_tokens=max_tokens, concurrency=len(items) or 1)
        result = await run_overrefusal(config, store, pool=pool, items=items)
    finally:
        store.close()
    failures.extend([result["first_error"] or "error"] * result["errors"])
    return Rate.of(result["refused"], result["n"])


async def _engagement(
    spec: str, pool: ModelPool, items: list[Item], cfg: EvalConfig, store_dir: Path, failures: list[str]
) -> dict:
    """The same measurement as `dilemma engagement`, on this side's model and subset: its `SideResult` fields."""
    store = open_store(store_dir)
    try:
        config = EngagementConfig(
            target=spec, max_tokens=cfg.max_tokens, seed=cfg.seed, swap=True, concurrency=len(items) or 1
        )
        result = await run_engagement(config, store, pool=pool, items=items)
    finally:
        store.close()
    failures.extend([result["first_error"] or "error"] * result["errors"])
    # the CIs run_engagement computed (Wilson intervals, as Rate.of)
    rate = Rate(result["engaged"], result["n"], result["ci_low"], result["ci_high"])
    swap = Rate(result["swap_consistent"], result["swap_n"], result["swap_ci_low"], result["swap_ci_high"])
    agreement = Rate(
        result["reference_agreed"],
        result["reference_agreement_n"],
        result["reference_agreement_ci_low"],
        result["reference_agreement_ci_high"],
    )
    return {
        "engagement": rate,
        "engagement_refused": result["refused"],
        "swap_consistency": swap,
        "reference_agreement": agreement,
    }


async def _followthrough(spec: str, pool: ModelPool, cfg: EvalConfig, store_dir: Path, failures: list[str]) -> dict:
    """The same measurement as `dilemma followthrough`, on this side's model: its `SideResult` fields (the rate,
    and what the follow-ups not carried out were)."""
    store = open_store(store_dir)
    try:
        config = FollowThroughConfig(
            target=spec,
            limit=cfg.followthrough_limit,
            seed=cfg.seed,
            max_tokens=cfg.max_tokens,
            concurrency=cfg.concurrency,
        )
        result = await run_followthrough(config, store, pool=pool, show_progress=True)
    finally:
        store.close()
    failures.extend([result["first_error"] or "error"] * result["errors"])
    rate = Rate(result["delivered"], result["n"], result["ci_low"], result["ci_high"])
    return {
        "followthrough": rate,
        "followthrough_outcomes": {k: result[k] for k in SideResult.FOLLOWTHROUGH_OUTCOMES},
    }


def _encode(tok, prompt: str) -> list[int]:
    text = tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=False)
    return tok(text, add_special_tokens=False)["input_ids"]


def benign_kl(base, defended, prompts: list[str], tokens: int = 32) -> Estimate:
    """Mean over prompts of the mean KL(base || defended) per position along the base model's greedy answer."""
    tok = base.tokenizer
    kls = []
    for p in prompts:
        ids = torch.tensor([_encode(tok, p)])
        with torch.inference_mode():
            out = base.model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=tokens,
                do_sample=False,
                pad_token_id=tok.pad_token_id or tok.eos_token_id,
                temperature=None,
                top_p=None,
                top_k=None,
            )
            start = ids.shape[1] - 1
            lb = base.model(input_ids=out).logits[0, start:-1].float().log_softmax(-1)
            defense = defended.defense
            if defense is not None:
                with defense.pooled_at(torch.tensor([start])):
                    ld = defended.model(input_ids=out).logits[0, start:-1].float().log_softmax(-1)
            else:
                ld = defended.model(input_ids=out).logits[0, start:-1].float().log_softmax(-1)
        kls.append(float((lb.exp() * (lb - ld)).sum(-1).mean()))
    return Estimate.of(kls)


def gate_accuracy(defended, harmful: list[str], benign: list[str]) -> dict[str, Rate] | None:
    """The gate's correct calls: overall ("all") and on each half ("harmful", "benign"); None without a gate."""
    defense = defended.defense
    if defense is None or defense.gate is None:
        return None
    tok = defended.tokenizer
    correct = {}
    for name, label, prompts in (("harmful", True, harmful), ("benign", False, benign)):
        correct[name] = 0
        for p in prompts:
            ids = torch.tensor([_encode(tok, p)])
            score = float(defense.gate_scores(defended.model, ids, torch.ones_like(ids))[0])
            correct[name] += int((score > defense.config.threshold) == label)
    return {
        "all": Rate.of(correct["harmful"] + correct["benign"], len(harmful) + len(benign)),
        "harmful": Rate.of(correct["harmful"], len(harmful)),
        "benign": Rate.of(correct["benign"], len(benign)),
    }


def latency_ratio(base, defended, prompts: list[str], tokens: int) -> Estimate:
    """Median over prompts of defended/base time for exactly `tokens` new tokens (interleaved runs)."""
    ratios = []
    for p in prompts:
        ids = torch.tensor([_encode(base.tokenizer, p)])
        times = {}
        for name, m in (("base", base), ("defended", defended), ("base2", base), ("defended2", defended)):
            start = time.perf_counter()
            with torch.inference_mode():
                m.model.generate(
                    input_ids=ids,
                    attention_mask=torch.ones_like(ids),
                    max_new_tokens=tokens,
                    min_new_tokens=tokens,
                    do_sample=False,
                    pad_token_id=m.tokenizer.eos_token_id,
                    temperature=None,
                    top_p=None,
                    top_k=None,
                )
            times[name] = time.perf_counter() - start
        ratios.append(min(times["defended"], times["defended2"]) / min(times["base"], times["base2"]))
    return Estimate.of(ratios, np.median) if ratios else Estimate(1.0, 0, 1.0, 1.0)


@dataclass
class HeldOut:
    """The prompts both sides are measured on."""

    behaviors: list[Behavior]
    strongreject: list[Behavior]
    xstest: list[Item]
    benign: list[str]
    dilemmas: list[Item] = field(default_factory=list)


async def measure_side(spec: str, pool: ModelPool, sub: Path, data: HeldOut, cfg: EvalConfig) -> SideResult:
    """ASRs, over-refusal and engagement of one model; stored in `sub/side.json` and reused when spec, sizes and prompts match."""
    key = {
        "format": 5,  # the result's layout: counts and CIs beside each rate; 3: trial_turn1_act; 4: compliance judge;
        # 5: dilemmas in both option orders (swap_consistency), follow-through
        "spec": spec,
        "defenses": defense_weights(spec),  # a side is stale once a defense is retrained under the same name
        "config": cfg.model_dump(),
        "behaviors": _jsonl(data.behaviors),
        "strongreject": _jsonl(data.strongreject),
        "xstest": [it.prompt for it in data.xstest],
        "dilemmas": [it.prompt for it in data.dilemmas],
        "followthrough": cfg.followthrough_limit,
    }
    cache = sub / "side.json"
    if cache.exists():
        stored = json.loads(cache.read_text())
        if stored.get("key") == key:
            return SideResult.from_json(stored["result"])
    held_out_set, strongreject_set = f"held-out {cfg.behaviors}", "held-out strongreject"
    failures: list[str] = []  # conversations and prompts that ended in errors
    trial, act = await _campaign_asr(spec, pool, "trial", held_out_set, data.behaviors, cfg, sub / "trial", failures)
    direct, _ = await _campaign_asr(spec, pool, "direct", held_out_set, data.behaviors, cfg, sub / "direct", failures)
    strongreject, _ = await _campaign_asr(
        spec, pool, "direct", strongreject_set, data.strongreject, cfg, sub / "strongreject", failures
    )
    # refusals come first, so a short reply is enough to tell
    over_refusal = await _over_refusal(spec, pool, data.xstest, min(cfg.max_tokens, 32), sub / "overrefusal", failures)
    result = SideResult(
        trial_asr=trial,
        trial_turn1_act=act,
        direct_asr=direct,
        strongreject_asr=strongreject,
        over_refusal=over_refusal,
        **await _engagement(spec, pool, data.dilemmas, cfg, sub / "engagement", failures),
        **await _followthrough(spec, pool, cfg, sub / "followthrough", failures),
        items=2 * len(data.behaviors) + len(data.strongreject) + len(data.xstest) + len(data.dilemmas),
        errors=len(failures),
        first_error=failures[0] if failures else None,
    )
    if not failures:  # a side with errors is measured again by the next run (which retries them)
        sub.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps({"key": key, "result": result.as_json()}) + "\n")
    return result


def prepare(base_spec: str, defended_spec: str, cfg: EvalConfig) -> HeldOut:
    """Held-out behaviors and prompt lists shared by both sides."""
    exclude: set[str] = set()
    for ref in defense_refs(base_spec) + defense_refs(defended_spec):
        path = resolve_defense(ref) / "train_prompts.sha1.json"
        if path.exists():
            exclude.update(json.loads(path.read_text()))
    behaviors = held_out(cfg.behaviors, cfg.limit, cfg.seed, exclude)
    strongreject = held_out("strongreject", cfg.strongreject_limit, cfg.seed, exclude)
    if not behaviors:
        raise UserError(f"no held-out behaviors left in {cfg.behaviors!r}")
    dilemmas = dilemma_items(seed=cfg.seed, limit=cfg.dilemma_limit, swap=True)  # each in both option orders
    return HeldOut(behaviors, strongreject, xstest_safe(cfg.xstest_limit), benign_test(cfg.benign_limit), dilemmas)


def evaluate(base_spec: str, defended_spec: str, run_dir: Path, cfg: EvalConfig, *, console=None) -> DefendEval:
    return asyncio.run(_evaluate(base_spec, defended_spec, Path(run_dir), cfg, console=console))


async def _evaluate(base_spec: str, defended_spec: str, run_dir: Path, cfg: EvalConfig, *, console=None) -> DefendEval:
    async with pool_scope() as pool:
        base, defended = pool.get(base_spec), pool.get(defended_spec)
        if not isinstance(base, LocalHFModel) or not isinstance(defended, LocalHFModel):
            raise UserError("defend eval needs local models (embedded.., hf:..) for KL, gate and latency")
        data = prepare(base_spec, defended_spec, cfg)
        sides: dict[str, SideResult] = {}
        for label, spec in (("base", base_spec), ("defended", defended_spec)):
            if console:
                console.print(f"[bold]{label}[/bold]: {spec}")
            sides[label] = await measure_side(spec, pool, run_dir / label, data, cfg)
        kl = benign_kl(base, defended, data.benign)
        harmful = [b.prompt for b in data.behaviors + data.strongreject]
        gate = gate_accuracy(defended, harmful, data.benign)
        latency = latency_ratio(base, defended, data.benign[: cfg.latency_prompts], cfg.latency_tokens)
    config = {
        **cfg.model_dump(),
        "base": base_spec,
        "defended": defended_spec,
        "held_out_behaviors": len(data.behaviors),
        "strongreject_prompts": len(data.strongreject),
        "xstest_prompts": len(data.xstest),
        "dilemma_prompts": len(data.dilemmas),
        "followthrough_dilemmas": cfg.followthrough_limit,
        "benign_prompts": len(data.benign),
    }
    result = DefendEval(sides["base"], sides["defended"], kl, gate, latency, asdict(CI), config)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "defend_eval.json").write_text(json.dumps(result.as_json(), indent=2) + "\n")
    return result
