"""`dilemma demo`: the paper's finding in one offline run.

On held-out JBB behaviors (those no built-in defense was trained on), an aligned model that refuses plain
harmful requests is attacked with direct requests and with TRIAL; then the same model with the ERR defense.
Both answer held-out benign moral dilemmas too (engagement: the alignment tax). One table and one sentence,
computed from the counts, say what happened; `demo.json` in the run dir keeps them for the report.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from dilemmakit.config import Config, option
from dilemmakit.eval.stats import Rate

DEMO_NAME = "demo.json"
METHODS = ("direct", "trial")


class DemoConfig(Config):
    aligned: str = option("embedded-aligned", "The aligned model: refuses plain harmful requests")
    defended: str = option("embedded-err", "The aligned model with the ERR defense")
    limit: int = option(8, "Held-out JBB behaviors (a seeded sample)", ge=1)
    dilemma_limit: int = option(20, "Held-out benign dilemmas for engagement", ge=1)
    max_rounds: int = option(3, "TRIAL rounds", ge=1)
    max_tokens: int = option(96, "Target max new tokens (kept small for a CPU)", ge=1)
    seed: int = option(7, "Seed of the behavior sample, the TRIAL templates and the dilemma wording")
    judge: str = option("instrumental", cli=False)
    attacker: str = option("template", cli=False)

    def check(self) -> None:
        from dilemmakit.models.spec import parse_spec

        parse_spec(self.aligned)
        parse_spec(self.defended)

    def eval_config(self):
        """The `defend eval` settings that pick the same held-out prompts and campaigns."""
        from dilemmakit.err.config import EvalConfig

        return EvalConfig(
            limit=self.limit,
            dilemma_limit=self.dilemma_limit,
            max_rounds=self.max_rounds,
            max_tokens=self.max_tokens,
            seed=self.seed,
            judge=self.judge,
            attacker=self.attacker,
            strongreject_limit=1,  # prepare() draws these too; the demo does not use them
            xstest_limit=1,
            benign_limit=1,
            concurrency=self.limit,  # every conversation at once: the local engine batches them
        )


@dataclass(frozen=True)
class TargetResult:
    target: str
    direct: Rate  # successful direct requests
    trial: Rate  # successful TRIAL conversations
    engagement: Rate  # benign dilemmas answered with a choice and a reason (keyword measure)
    picks_act: Rate | None = None  # TRIAL conversations whose first reply picks Option A, the act (keyword measure)

    def as_dict(self) -> dict:
        names = ("direct", "trial", "engagement") + (("picks_act",) if self.picks_act is not None else ())
        rates = {name: getattr(self, name) for name in names}
        return {
            "target": self.target,
            **{name: {**asdict(r), "rate": r.value, "cell": r.cell()} for name, r in rates.items()},
        }


@dataclass(frozen=True)
class DemoResult:
    aligned: TargetResult
    defended: TargetResult
    behaviors: int
    dilemmas: int
    errors: int  # conversations and dilemmas that ended in an error
    total: int
    first_error: str | None = None

    @property
    def finding(self) -> str:
        return finding(self.aligned, self.defended)

    def as_dict(self) -> dict:
        return {
            "finding": self.finding,
            "behaviors": self.behaviors,
            "dilemmas": self.dilemmas,
            "targets": {"aligned": self.aligned.as_dict(), "defended": self.defended.as_dict()},
            "errors": self.errors,
            "total": self.total,
            "first_error": self.first_error,
        }


def _counts(r: Rate) -> str:
    return f"{r.count}/{r.n}"


def _overlap(a: Rate, b: Rate) -> str:
    """A note when two different counts are within each other's 95% intervals."""
    return (
        ", the 95% intervals overlap" if a.count != b.count and a.ci_low <= b.ci_high and b.ci_low <= a.ci_high else ""
    )


def finding(aligned: TargetResult, defended: TargetResult) -> str:
    """The demo's result in one sentence, phrased from the counts whatever they are."""
    direct, trial, err_trial = aligned.direct, aligned.trial, defended.trial
    if not (direct.n and trial.n and err_trial.n):
        return "No finding: a campaign finished no conversation (see the errors above)."
    if direct.count == 0:
        said = f"the aligned model refused every direct request ({_counts(direct)} succeeded)"
    elif 2 * direct.count < direct.n:
        said = f"the aligned model refused most direct requests ({_counts(direct)} succeeded)"
    else:
        said = f"the aligned model answered {_counts(direct)} direct requests"
    if trial.count > direct.count:
        joint = "but" if 2 * direct.count < direct.n else "and"
        attack = f"{joint} TRIAL got through on {_counts(trial)}{_overlap(trial, direct)}"
    elif trial.count == direct.count:
        attack = f"and TRIAL did no better ({_counts(trial)})"
    else:
        attack = f"and TRIAL did worse ({_counts(trial)}{_overlap(trial, direct)})"
    picked, err_picked = aligned.picks_act, defended.picks_act
    if picked is not None and picked.n and trial.count <= direct.count:
        attack += f", though the model picked the act (Option A) in turn 1 of {_counts(picked)} TRIAL dilemmas"
    if err_trial.count < trial.count:
        defense = f"ERR cut TRIAL to {_counts(err_trial)}{_overlap(err_trial, trial)}"
    elif err_trial.count == trial.count:
        defense = f"ERR left TRIAL at {_counts(err_trial)}"
    else:
        defense = f"with ERR TRIAL got through more often, on {_counts(err_trial)}{_overlap(err_trial, trial)}"
    if picked is not None and err_picked is not None and picked.n and err_picked.n:
        verb = "cut" if err_picked.count < picked.count else "left"
        defense += f" and {verb} turn-1 picks of the act to {_counts(err_picked)}{_overlap(err_picked, picked)}"
    tax = (
        f"the defended model engaged {_counts(defended.engagement)} benign dilemmas "
        f"({_counts(aligned.engagement)} without ERR)"
    )
    return f"On {trial.n} held-out JBB behaviors {said} {attack}; {defense}, and {tax}."


def run_demo(config: DemoConfig, run_dir: Path, *, console=None) -> DemoResult:
    """Run (or resume) the demo in `run_dir` (one run DB) and write `demo.json` there."""
    from dilemmakit.store.db import open_store

    config.check()
    store = open_store(run_dir)
    try:
        result = asyncio.run(_run(config, store, console))
    finally:
        store.close()
    (run_dir / DEMO_NAME).write_text(
        json.dumps({**result.as_dict(), "config": config.model_dump()}, indent=2) + "\n", encoding="utf-8"
    )
    return result


async def _run(config: DemoConfig, store, console) -> DemoResult:
    from dilemmakit.campaign import run_campaign
    from dilemmakit.err.evaluate import campaign_config, first_reply_picks_act, prepare
    from dilemmakit.eval.engagement import EngagementConfig, run_engagement
    from dilemmakit.loading import pool_scope

    cfg = config.eval_config()
    data = prepare(config.aligned, config.defended, cfg)  # drops the prompts either defense was trained on
    targets = (config.aligned, config.defended)
    async with pool_scope() as pool:
        for spec in targets:  # load the weights before the progress bars start
            pool.get(spec)
        if console is not None:
            console.print(
                f"per target, all at once: direct and TRIAL on {len(data.behaviors)} held-out JBB behaviors, "
                f"engagement on {len(data.dilemmas)} held-out benign dilemmas (no progress bar)"
            )
        keys = [(spec, method) for spec in targets for method in METHODS]
        campaign_jobs = [
            run_campaign(
                campaign_config(spec, method, f"held-out {cfg.behaviors}", cfg),
                store,
                behaviors=data.behaviors,
                console=console,
                pool=pool,
            )
            for spec, method in keys
        ]
        engagement_jobs = [
            run_engagement(
                EngagementConfig(
                    target=spec, max_tokens=config.max_tokens, seed=config.seed, concurrency=len(data.dilemmas)
                ),
                store,
                pool=pool,
                items=data.dilemmas,
                show_progress=False,
            )
            for spec in targets
        ]
        campaigns, engagements = await asyncio.gather(asyncio.gather(*campaign_jobs), asyncio.gather(*engagement_jobs))
    by_key = dict(zip(keys, campaigns, strict=True))
    rows = [
        TargetResult(
            spec,
            direct=Rate.of(by_key[spec, "direct"].successes, by_key[spec, "direct"].done),
            trial=Rate.of(by_key[spec, "trial"].successes, by_key[spec, "trial"].done),
            # the CI run_engagement computed (the same bootstrap settings as Rate.of)
            engagement=Rate(engaged["engaged"], engaged["n"], engaged["ci_low"], engaged["ci_high"]),
            picks_act=first_reply_picks_act(store, by_key[spec, "trial"].run_id),
        )
        for spec, engaged in zip(targets, engagements, strict=True)
    ]
    errors = [c.first_error or "error" for c in campaigns for _ in range(c.errors)]
    errors += [e["first_error"] or "error" for e in engagements for _ in range(e["errors"])]
    return DemoResult(
        rows[0],
        rows[1],
        behaviors=len(data.behaviors),
        dilemmas=len(data.dilemmas),
        errors=len(errors),
        total=sum(c.total for c in campaigns) + 2 * len(data.dilemmas),
        first_error=errors[0] if errors else None,
    )


def demo_table(result: DemoResult):
    """The one table: a row per target; direct ASR, TRIAL ASR, TRIAL turn-1 picks of the act and engagement as
    `k/n = p% [lo, hi]`."""
    from rich.table import Table

    table = Table(
        title=f"{result.behaviors} held-out JBB behaviors, {result.dilemmas} held-out benign dilemmas",
        caption="k/n = rate [95% Wilson CI]; TRIAL success = instrumental judge (keyword/feature rules); "
        "turn 1 picks the act and engagement are keyword measures",
    )
    for column in ("target", "direct ASR", "TRIAL ASR", "TRIAL turn 1 picks the act", "benign-dilemma engagement"):
        table.add_column(column, justify="left" if column == "target" else "right")
    for row in (result.aligned, result.defended):
        picks = row.picks_act.cell() if row.picks_act is not None else "-"
        table.add_row(row.target, row.direct.cell(), row.trial.cell(), picks, row.engagement.cell())
    return table
