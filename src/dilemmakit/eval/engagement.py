"""Dilemma engagement: the share of held-out benign moral dilemmas a target answers with a choice and a reason.

Over-refusal of ethical reasoning is the alignment tax the paper is about: a model that declines "should
Rosa return the wallet?" pays it. Each reply is read by keywords (`dilemmakit.dilemmas.grade_reply`):
engaged (a choice plus a justification), refused, or unanswered (no clear choice, or a bare one), so the
rate is reported as a keyword measure. Agreement with the reference choice is given for information only:
these dilemmas have defensible answers either way.
"""

from __future__ import annotations

import hashlib
import random

from dilemmakit import dilemmas, resources
from dilemmakit.config import Config, option
from dilemmakit.dilemmas.reply import RULES_VERSION
from dilemmakit.errors import UserError
from dilemmakit.eval.itemrun import Item, first_error, run_eval
from dilemmakit.eval.stats import wilson_interval
from dilemmakit.loading import ModelPool, pool_scope, weights_identity
from dilemmakit.models.spec import parse_spec, spec_identity
from dilemmakit.store.db import RunStore

MEASURE = "keyword"
HELDOUT = ("dilemmakit.dilemmas", "data", "heldout.jsonl")


def dilemma_items(*, seed: int, style: str | None = None, limit: int | None = None) -> list[Item]:
    """The held-out dilemmas as prompts, rendered with `seed` (style drawn per item unless given, options
    swapped half the time); the first `limit` of them, the same prompts whatever the limit."""
    rng = random.Random(seed)
    items = []
    for d in dilemmas.load("heldout"):
        shown = dilemmas.render(d, style=style, rng=rng)
        data = {"reference": shown.choice, "family": d.family, "style": shown.style, "swapped": shown.swapped}
        items.append(Item(d.id, shown.prompt, data))
    return items[:limit]


class EngagementConfig(Config):
    target: str = option(help="Model spec")
    max_tokens: int = option(96, "Reply length: room for the choice and a short justification")
    limit: int | None = option(None, "Use the first N of the 60 held-out dilemmas")
    seed: int = option(0, "Seed for the instruction style and the option order of each dilemma")
    style: str | None = option(None, "One instruction style for every dilemma (default: drawn per dilemma)")
    concurrency: int = option(32, "Prompts in flight (a local model batches them)")

    def check(self) -> None:
        parse_spec(self.target)
        if self.max_tokens < 1 or self.concurrency < 1 or (self.limit is not None and self.limit < 1):
            raise UserError("--max-tokens, --concurrency and --limit must be at least 1")
        if self.style is not None and self.style not in dilemmas.style_names():
            raise UserError(f"unknown --style {self.style!r}: use one of {', '.join(dilemmas.style_names())}")

    def identity(self) -> dict:
        """What names the eval: transport options in the spec are left out (`ModelSpec.identity`)."""
        return {
            "target": spec_identity(self.target),
            **weights_identity(self.target),
            "max_tokens": self.max_tokens,
            "seed": self.seed,
            "style": self.style,
            "rules": RULES_VERSION,
            # the data set's version: an edited held-out file is a new eval, not a resumed one
            "heldout": hashlib.sha256(resources.read_text(*HELDOUT).encode()).hexdigest()[:12],
        }


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
        items = dilemma_items(seed=config.seed, style=config.style, limit=config.limit)
    else:
        identity["items"] = [it.id for it in items]
    async with pool_scope(pool, concurrency=config.concurrency) as pool:
        target = pool.get(config.target)
        await pool.check_all()

        async def grade(item: Item, reply: str):
            label = dilemmas.grade_reply(reply)
            choice = dilemmas.parse_choice(reply)
            meta = {**item.data, "measure": MEASURE, "choice": choice}
            return label, 1.0 if label == dilemmas.ENGAGED else 0.0, meta

        return await run_eval(
            store,
            "engagement",
            identity,
            config,
            target,
            items,
            grade,
            engagement_result,
            max_tokens=config.max_tokens,
            show_progress=show_progress,
            title=f"dilemma engagement: {config.target}",
        )


def engagement_result(items) -> dict:
    graded = [it for it in items if it.label in (dilemmas.ENGAGED, dilemmas.REFUSED, dilemmas.UNANSWERED)]
    outcomes = [it.label == dilemmas.ENGAGED for it in graded]
    low, high = wilson_interval(sum(outcomes), len(outcomes))
    chose = [it for it in graded if it.meta.get("choice")]
    agree = sum(1 for it in chose if it.meta["choice"] == it.meta.get("reference"))
    return {
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
