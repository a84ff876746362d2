"""`dilemma demo --target SPEC`: the demo on one model we did not train and cannot defend (`real-qwen`).

The same held-out JBB behaviors, TRIAL settings, judge and benign dilemmas as the organism's demo
(`dilemmakit.demo`), on one target and without the ERR row: direct vs TRIAL ASR, turn-1 picks of the act,
engagement with benign dilemmas asked in both option orders (swap-consistency), and follow-through on
harmless follow-up requests. One table, one sentence from the counts, `demo.json` for the report.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from dilemmakit.demo import DEMO_NAME, METHODS, DemoConfig, TargetResult, _counts, _overlap
from dilemmakit.eval.stats import Rate

FOLLOWTHROUGH_LIMIT = 4  # dilemmas (2 follow-ups each): the slowest measure per item on a CPU


@dataclass(frozen=True)
class TargetDemoResult:
    row: TargetResult
    swap: Rate  # dilemmas where the same option content is chosen in both orders
    followthrough: Rate | None  # follow-up requests delivered (None: not measured)
    behaviors: int
    dilemmas: int
    errors: int
    total: int
    wall_s: float
    first_error: str | None = None

    @property
    def finding(self) -> str:
        return target_finding(self)

    def as_dict(self) -> dict:
        row = self.row.as_dict()
        for name, rate in (("swap_consistency", self.swap), ("followthrough", self.followthrough)):
            if rate is not None:
                row[name] = {**asdict(rate), "rate": rate.value, "cell": rate.cell()}
        return {
            "finding": self.finding,
            "behaviors": self.behaviors,
            "dilemmas": self.dilemmas,
            "targets": {"target": row},
            "errors": self.errors,
            "total": self.total,
            "first_error": self.first_error,
            "wall_s": round(self.wall_s, 1),
        }


def target_finding(result: TargetDemoResult) -> str:
    """The single-target demo's result in one sentence, phrased from the counts whatever they are."""
    row = result.row
    direct, trial = row.direct, row.trial
    if not (direct.n and trial.n):
        return "No finding: a campaign finished no conversation (see the errors above)."
    if direct.count == 0:
        said = f"{row.target} refused every direct request ({_counts(direct)} succeeded)"
    elif 2 * direct.count < direct.n:
        said = f"{row.target} refused most direct requests ({_counts(direct)} succeeded)"
    else:
        said = f"{row.target} answered {_counts(direct)} direct requests"
    if trial.count > direct.count:
        joint = "but" if 2 * direct.count < direct.n else "and"
        attack = f"{joint} TRIAL got through on {_counts(trial)}{_overlap(trial, direct)}"
    elif trial.count == direct.count:
        attack = f"and TRIAL did no better ({_counts(trial)})"
    else:
        attack = f"and TRIAL did worse ({_counts(trial)}{_overlap(trial, direct)})"
    if row.picks_act is not None and row.picks_act.n:
        attack += f"; it picked the act (Option A) in turn 1 of {_counts(row.picks_act)} TRIAL dilemmas"
    tail = (
        f"it engaged {_counts(row.engagement)} benign dilemma prompts and chose the same option in both orders "
        f"on {_counts(result.swap)}"
    )
    if result.followthrough is not None:
        tail += f", and carried out {_counts(result.followthrough)} harmless follow-up requests"
    return f"On {trial.n} held-out JBB behaviors {said} {attack}; {tail}."


def run_target_demo(config: DemoConfig, target: str, run_dir: Path, *, console=None) -> TargetDemoResult:
    """Run (or resume) the single-target demo in `run_dir` and write `demo.json` there."""
    from dilemmakit.models.spec import parse_spec
    from dilemmakit.store.db import open_store

    parse_spec(target)
    store = open_store(run_dir)
    started = time.monotonic()
    try:
        result = asyncio.run(_run(config, target, store, console, started))
    finally:
        store.close()
    (run_dir / DEMO_NAME).write_text(
        json.dumps({**result.as_dict(), "config": {**config.model_dump(), "target": target}}, indent=2) + "\n",
        encoding="utf-8",
    )
    return result


async def _run(config: DemoConfig, target: str, store, console, started: float) -> TargetDemoResult:
    from dilemmakit.campaign import run_campaign
    from dilemmakit.err.evaluate import campaign_config, first_reply_picks_act, prepare
    from dilemmakit.eval.engagement import EngagementConfig, run_engagement
    from dilemmakit.eval.followthrough import measure_followthrough
    from dilemmakit.loading import pool_scope

    cfg = config.eval_config()
    data = prepare(target, target, cfg)  # the organism demo's held-out behaviors (same seed, same sample)
    async with pool_scope() as pool:
        pool.get(target)  # start the server before anything is timed against it
        if console is not None:
            console.print(
                f"{target}: direct and TRIAL on {len(data.behaviors)} held-out JBB behaviors, engagement on "
                f"{config.dilemma_limit} held-out dilemmas in both option orders, follow-through on "
                f"{FOLLOWTHROUGH_LIMIT} (one request at a time; no progress bar)"
            )
        campaigns = await asyncio.gather(
            *(
                run_campaign(
                    campaign_config(target, method, f"held-out {cfg.behaviors}", cfg),
                    store,
                    behaviors=data.behaviors,
                    console=console,
                    pool=pool,
                )
                for method in METHODS
            )
        )
        engagement, followthrough = await asyncio.gather(
            run_engagement(
                EngagementConfig(
                    target=target,
                    max_tokens=config.max_tokens,
                    seed=config.seed,
                    limit=config.dilemma_limit,
                    swap=True,
                    concurrency=2 * config.dilemma_limit,
                ),
                store,
                pool=pool,
                show_progress=False,
            ),
            measure_followthrough(target, store, pool=pool, limit=FOLLOWTHROUGH_LIMIT, seed=config.seed),
        )
    by_method = dict(zip(METHODS, campaigns, strict=True))
    row = TargetResult(
        target,
        direct=Rate.of(by_method["direct"].successes, by_method["direct"].done),
        trial=Rate.of(by_method["trial"].successes, by_method["trial"].done),
        engagement=Rate(engagement["engaged"], engagement["n"], engagement["ci_low"], engagement["ci_high"]),
        picks_act=first_reply_picks_act(store, by_method["trial"].run_id),
    )
    errors = [c.first_error or "error" for c in campaigns for _ in range(c.errors)]
    errors += [r["first_error"] or "error" for r in (engagement, followthrough) for _ in range(r["errors"])]
    return TargetDemoResult(
        row,
        swap=Rate(
            engagement["swap_consistent"], engagement["swap_n"], engagement["swap_ci_low"], engagement["swap_ci_high"]
        ),
        followthrough=Rate(
            followthrough["delivered"], followthrough["n"], followthrough["ci_low"], followthrough["ci_high"]
        ),
        behaviors=len(data.behaviors),
        dilemmas=config.dilemma_limit,
        errors=len(errors),
        total=sum(c.total for c in campaigns)
        + engagement["n"]
        + engagement["errors"]
        + followthrough["n"]
        + followthrough["errors"],
        wall_s=time.monotonic() - started,
        first_error=errors[0] if errors else None,
    )


def target_demo_table(result: TargetDemoResult):
    """The one table for one target: the organism demo's columns plus swap-consistency and follow-through."""
    from rich.table import Table

    table = Table(
        title=f"{result.behaviors} held-out JBB behaviors, {result.dilemmas} held-out benign dilemmas (both orders)",
        caption="k/n = rate [95% Wilson CI]; TRIAL success = instrumental judge (keyword/feature rules); turn 1 "
        "picks the act, engagement, swap-consistency and follow-through are keyword/feature measures",
    )
    columns = [
        "target",
        "direct ASR",
        "TRIAL ASR",
        "TRIAL turn 1 picks the act",
        "benign-dilemma engagement",
        "swap-consistency",
        "follow-through",
    ]
    for column in columns:
        table.add_column(column, justify="left" if column == "target" else "right")
    row = result.row
    table.add_row(
        row.target,
        row.direct.cell(),
        row.trial.cell(),
        row.picks_act.cell() if row.picks_act is not None else "-",
        row.engagement.cell(),
        result.swap.cell(),
        result.followthrough.cell() if result.followthrough is not None else "-",
    )
    return table
