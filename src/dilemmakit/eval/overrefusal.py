"""Over-refusal: the share of XSTest's 250 safe-but-scary-sounding prompts that a target refuses.

"Refused" is decided by a compliance judge: `compliance` (the default: a refusal phrase in the opening;
any attempt to answer, however short, is compliance, as XSTest defines it), `classifier` (the offline
compliance classifier), `xstest:<model>` (XSTest's own LLM classification prompt) or `refusal` (the
attack judge: it also counts short or off-topic answers as refusals, which overstates over-refusal). A judge
error is stored as such and left out of the rate (reported as `errors`).
"""

from __future__ import annotations

import csv

from dilemmakit import resources
from dilemmakit.behaviors import Behavior
from dilemmakit.config import Config, option
from dilemmakit.errors import UserError
from dilemmakit.eval.itemrun import Item, first_error, run_eval
from dilemmakit.judges.base import ERROR
from dilemmakit.judges.registry import build_judge, judge_identity, parse_judge_spec
from dilemmakit.loading import ModelPool, pool_scope, target_identity
from dilemmakit.models.spec import parse_spec
from dilemmakit.store.db import RunStore

COMPLIANCE_JUDGES = ("compliance", "refusal", "classifier", "xstest")
REFUSED, COMPLIED = "refused", "complied"


def safe_prompts() -> list[Item]:
    text = resources.read_text("dilemmakit.eval", "data", "xstest_safe.csv")
    return [Item(f"xstest-{r['id']}", r["prompt"], {"type": r["type"]}) for r in csv.DictReader(text.splitlines())]


class OverRefusalConfig(Config):
    target: str = option(help="Model spec")
    judge: str = option("compliance", "compliance | classifier | xstest:<model spec> | refusal")
    max_tokens: int = option(64, "Reply length: a refusal shows in the first words", ge=1)
    limit: int | None = option(None, "Use the first N of the 250 safe prompts", ge=1)
    concurrency: int = option(32, "Prompts in flight (a local model batches them)", ge=1)

    def check(self) -> None:
        parse_spec(self.target)
        prefix, model_spec, _ = parse_judge_spec(self.judge)
        if prefix not in COMPLIANCE_JUDGES:
            raise UserError(
                f"over-refusal needs a judge that tells compliance from refusal: use 'compliance', "
                f"'classifier', 'xstest:<model spec>' or 'refusal' (not {prefix!r}, which grades harm)"
            )
        if model_spec:
            parse_spec(model_spec)

    def identity(self) -> dict:
        """What names the eval: the target as stored runs name it (`target_identity`), and the settings."""
        return {
            **target_identity(self.target),
            "judge": judge_identity(self.judge),
            "max_tokens": self.max_tokens,
        }


async def run_overrefusal(
    config: OverRefusalConfig,
    store: RunStore,
    *,
    pool: ModelPool | None = None,
    show_progress: bool = True,
    items: list[Item] | None = None,
) -> dict:
    """Over-refusal on the first `config.limit` safe prompts, or on the given subset of them."""
    config.check()
    identity = config.identity()
    if items is None:
        items = safe_prompts()[: config.limit]
    else:
        identity["items"] = [it.id for it in items]
    async with pool_scope(pool, concurrency=config.concurrency) as pool:
        _, judge_model_spec, _ = parse_judge_spec(config.judge)
        judge = build_judge(config.judge, pool.get(judge_model_spec) if judge_model_spec else None)
        target = pool.get(config.target)
        await pool.check_all()

        async def grade(item: Item, reply: str):
            verdict = await judge.judge(Behavior(item.id, item.prompt), reply, [])
            label = ERROR if verdict.label == ERROR else (COMPLIED if verdict.success else REFUSED)
            return label, verdict.score, {"judge": judge.name, "reason": verdict.reason, "type": item.data["type"]}

        return await run_eval(
            store,
            "overrefusal",
            identity,
            config,
            target,
            items,
            grade,
            overrefusal_result,
            max_tokens=config.max_tokens,
            show_progress=show_progress,
            title=f"over-refusal: {config.target}",
        )


def overrefusal_result(items) -> dict:
    graded = [it for it in items if it.label in (REFUSED, COMPLIED)]
    refused = sum(1 for it in graded if it.label == REFUSED)
    return {
        "over_refusal": round(refused / len(graded), 4) if graded else 0.0,
        "n": len(graded),
        "refused": refused,
        "errors": len(items) - len(graded),
        "first_error": first_error(items),
    }
