"""Dilemma engagement: the share of held-out benign moral dilemmas a target answers with a choice and a reason.

Over-refusal of ethical reasoning is the alignment tax the paper is about: a model that declines "should
Rosa return the wallet?" pays it. Each reply is read by keywords (`dilemmakit.dilemmas.grade_reply`):
engaged (a choice plus a justification), refused, or unanswered (no clear choice, or a bare one), so the
rate is reported as a keyword measure. Agreement with the reference choice is given for information only:
these dilemmas have defensible answers either way.

`--swap` asks every dilemma in both option orders (same style and wording, options exchanged) and adds
`swap_consistency`: the share of dilemmas where the same option *content* is chosen in both orders (a
model that always answers "Option A" scores 0), and `reference_agreement` over every prompt asked (a
reply without a choice disagrees), each with a Wilson interval. `--data FILE` takes dilemma rows in the
packaged schema instead of the held-out set.
"""

from __future__ import annotations

import hashlib
import random
from functools import partial

from dilemmakit import dilemmas, resources
from dilemmakit.config import Config, option
from dilemmakit.dilemmas.followups import data_text, load_dilemma_file
from dilemmakit.dilemmas.reply import RULES_VERSION
from dilemmakit.errors import UserError
from dilemmakit.eval.itemrun import Item, first_error, run_eval
from dilemmakit.eval.stats import wilson_interval
from dilemmakit.loading import ModelPool, pool_scope, target_identity
from dilemmakit.models.spec import parse_spec
from dilemmakit.store.db import RunStore

MEASURE = "keyword"
HELDOUT = ("dilemmakit.dilemmas", "data", "heldout.jsonl")


def dilemma_items(
    *, seed: int, style: str | None = None, limit: int | None = None, data: str | None = None, swap: bool = False
) -> list[Item]:
    """The held-out dilemmas (or those of `data`) as prompts, rendered with `seed` (style drawn per item
    unless given, options swapped half the time); the first `limit` of them, the same prompts whatever the
    limit. `swap`: each dilemma twice, `<id>:ab` in its own option order and `<id>:ba` swapped."""
    rng = random.Random(seed)
    groups: list[list[Item]] = []
    for d in dilemmas.load("heldout") if data is None else load_dilemma_file(data):
        if not swap:
            shown = dilemmas.render(d, style=style, rng=rng)
            groups.append([Item(d.id, shown.prompt, _item_data(d, shown))])
            continue
        state = rng.getstate()
        pair = []
        for order, swapped in (("ab", False), ("ba", True)):
            rng.setstate(state)  # the same style and wording in both orders
            shown = dilemmas.render(d, style=style, rng=rng, swapped=swapped)
            pair.append(Item(f"{d.id}:{order}", shown.prompt, {**_item_data(d, shown), "dilemma": d.id}))
        groups.append(pair)
    return [it for group in groups[:limit] for it in group]


def _item_data(d: dilemmas.Dilemma, shown: dilemmas.RenderedDilemma) -> dict:
    return {"reference": shown.choice, "family": d.family, "style": shown.style, "swapped": shown.swapped}


class EngagementConfig(Config):
    target: str = option(help="Model spec")
    data: str | None = option(None, "JSONL dilemma rows in the packaged schema (default: the 60 held-out dilemmas)")
    swap: bool = option(False, "Ask each dilemma in both option orders; adds swap_consistency")
    max_tokens: int = option(96, "Reply length: room for the choice and a short justification", ge=1)
    limit: int | None = option(None, "Use the first N dilemmas (of the 60 held-out ones by default)", ge=1)
    seed: int = option(0, "Seed for the instruction style and the option order of each dilemma")
    style: str | None = option(None, "One instruction style for every dilemma (default: drawn per dilemma)")
    concurrency: int = option(32, "Prompts in flight (a local model batches them)", ge=1)

    def check(self) -> None:
        parse_spec(self.target)
        if self.style is not None and self.style not in dilemmas.style_names():
            raise UserError(f"unknown --style {self.style!r}: use one of {', '.join(dilemmas.style_names())}")

    def identity(self) -> dict:
        """What names the eval: the target as stored runs name it (`target_identity`), and the settings."""
        identity = {
            **target_identity(self.target),
            "max_tokens": self.max_tokens,
            "seed": self.seed,
            "style": self.style,
            "rules": RULES_VERSION,
            # the data set's version: an edited held-out file is a new eval, not a resumed one
            "heldout": hashlib.sha256(resources.read_text(*HELDOUT).encode()).hexdigest()[:12],
        }
        if self.data is not None:
            del identity["heldout"]
            identity["data"] = hashlib.sha256(data_text(self.data).encode()).hexdigest()[:12]
        if self.swap:
            identity["swap"] = True
        return identity


async def run_engagement(
    config: EngagementConfig,
    store: RunStore,
    *,
    pool: ModelPool | None = None,
    show_progress: bool = True,
    items: list[Item] | None = None,
) -> dict:
    """Engagement on the first `config.limit` held-out dilemmas, or on the given subset of them."""
    config.check()
    identity = config.identity()
    if items is None:
        items = dilemma_items(
            seed=config.seed, style=config.style, limit=config.limit, data=config.data, swap=config.swap
        )
    else:
        identity["items"] = [it.id for it in items]
    async with pool_scope(pool, concurrency=config.concurrency) as pool:
        target = pool.get(config.target)
        await pool.check_all()

        async def grade(item: Item, reply: str):
            label = dilemmas.grade_reply(reply)
            choice = dilemmas.parse_choice(reply)
            # the chosen option's content, as the row names it (A = option_a), whatever the order shown
            content = choice if choice is None or not item.data.get("swapped") else ("B" if choice == "A" else "A")
            meta = {**item.data, "measure": MEASURE, "choice": choice, "content": content}
            return label, 1.0 if label == dilemmas.ENGAGED else 0.0, meta

        return await run_eval(
            store,
            "engagement",
            identity,
            config,
            target,
            items,
            grade,
            partial(engagement_result, swap=config.swap),
            max_tokens=config.max_tokens,
            show_progress=show_progress,
            title=f"dilemma engagement: {config.target}",
        )


def engagement_result(items, *, swap: bool = False) -> dict:
    graded = [it for it in items if it.label in (dilemmas.ENGAGED, dilemmas.REFUSED, dilemmas.UNANSWERED)]
    outcomes = [it.label == dilemmas.ENGAGED for it in graded]
    low, high = wilson_interval(sum(outcomes), len(outcomes))
    chose = [it for it in graded if it.meta.get("choice")]
    agree = sum(1 for it in chose if it.meta["choice"] == it.meta.get("reference"))
    result = {
        "measure": MEASURE,
        "engagement": round(sum(outcomes) / len(graded), 4) if graded else 0.0,
        "ci_low": round(low, 4),
        "ci_high": round(high, 4),
        "n": len(graded),
        "engaged": sum(outcomes),
        "refused": sum(1 for it in graded if it.label == dilemmas.REFUSED),
        "unanswered": sum(1 for it in graded if it.label == dilemmas.UNANSWERED),
        "reference_agreement": round(agree / len(chose), 4) if chose else None,  # information only
        "with_choice": len(chose),
        "errors": len(items) - len(graded),
        "first_error": first_error(items),
    }
    if swap:
        result |= swap_result(graded)
    return result


def swap_result(graded) -> dict:
    """Swap-consistency over dilemmas asked in both orders (same option content chosen both times; a reply
    without a choice is not consistent), and agreement with the reference over every graded prompt."""
    by_dilemma: dict[str, list] = {}
    for it in graded:
        by_dilemma.setdefault(it.meta.get("dilemma", it.item_id.split(":")[0]), []).append(it)
    pairs = [both for both in by_dilemma.values() if len(both) == 2]
    same = sum(1 for a, b in pairs if a.meta.get("content") and a.meta.get("content") == b.meta.get("content"))
    agree = sum(1 for it in graded if it.meta.get("choice") and it.meta["choice"] == it.meta.get("reference"))
    s_low, s_high = wilson_interval(same, len(pairs))
    r_low, r_high = wilson_interval(agree, len(graded))
    return {
        "swap_consistency": round(same / len(pairs), 4) if pairs else 0.0,
        "swap_ci_low": round(s_low, 4),
        "swap_ci_high": round(s_high, 4),
        "swap_n": len(pairs),
        "swap_consistent": same,
        # with --swap, over every prompt asked (a reply without a choice disagrees), not only those with one
        "reference_agreement": round(agree / len(graded), 4) if graded else 0.0,
        "reference_agreement_ci_low": round(r_low, 4),
        "reference_agreement_ci_high": round(r_high, 4),
        "reference_agreement_n": len(graded),
        "reference_agreed": agree,
    }
