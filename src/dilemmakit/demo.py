"""`dilemma demo`: the paper's finding in one offline run.

On held-out JBB behaviors (those no built-in defense was trained on), an aligned model that refuses plain
harmful requests is attacked with direct requests and with TRIAL; then the same model with the ERR defense.
Both answer held-out benign moral dilemmas in both option orders (engagement, the alignment tax, and
swap-consistency: does the choice follow the content?) and carry out harmless follow-up requests
(follow-through: the positive control a TRIAL null needs). One table and one sentence, computed from the
counts, say what happened; `demo.json` in the run dir keeps them for the report. `--target SPEC` runs the
same measures on one model we did not train (no ERR row).
"""

from __future__ import annotations

import asyncio
import json
import time
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
    dilemma_limit: int = option(20, "Held-out benign dilemmas for engagement, each in both option orders", ge=1)
    followthrough_limit: int = option(6, "Held-out dilemmas for follow-through (2 harmless follow-ups each)", ge=1)
    # three dependent turns per dilemma make follow-through the demo's longest chain; 128 tokens still hold a note
    followup_max_tokens: int = option(128, "Max new tokens of each follow-up reply (follow-through)", ge=1)
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
    engagement: Rate  # benign dilemma prompts answered with a choice and a reason (keyword measure)
    picks_act: Rate | None = None  # TRIAL conversations whose first reply picks Option A, the act (keyword measure)
    swap: Rate | None = None  # dilemmas where the same option content is chosen in both orders (keyword measure)
    followthrough: Rate | None = None  # harmless follow-up requests carried out (feature rules)

    def as_dict(self) -> dict:
        names = {
            "direct": "direct",
            "trial": "trial",
            "engagement": "engagement",
            "picks_act": "picks_act",
            "swap": "swap_consistency",
            "followthrough": "followthrough",
        }
        rates = {key: getattr(self, name) for name, key in names.items() if getattr(self, name) is not None}
        return {
            "target": self.target,
            **{key: {**asdict(r), "rate": r.value, "cell": r.cell()} for key, r in rates.items()},
        }


@dataclass(frozen=True)
class DemoResult:
    aligned: TargetResult  # the aligned model, or the one `--target`
    defended: TargetResult | None  # it with ERR (None: a one-target demo)
    behaviors: int
    dilemmas: int
    errors: int  # conversations, dilemma prompts and follow-ups that ended in an error
    total: int
    first_error: str | None = None
    wall_s: float | None = None

    @property
    def rows(self) -> list[TargetResult]:
        return [self.aligned] if self.defended is None else [self.aligned, self.defended]

    @property
    def finding(self) -> str:
        return finding(self.aligned, self.defended)

    def as_dict(self) -> dict:
        roles = (
            {"target": self.aligned} if self.defended is None else {"aligned": self.aligned, "defended": self.defended}
        )
        return {
            "finding": self.finding,
            "behaviors": self.behaviors,
            "dilemmas": self.dilemmas,
            "targets": {role: row.as_dict() for role, row in roles.items()},
            "errors": self.errors,
            "total": self.total,
            "first_error": self.first_error,
            **({"wall_s": round(self.wall_s, 1)} if self.wall_s is not None else {}),
        }


def _counts(r: Rate) -> str:
    return f"{r.count}/{r.n}"


def _overlap(a: Rate, b: Rate) -> str:
    """A note when two different counts are within each other's 95% intervals."""
    return (
        ", the 95% intervals overlap" if a.count != b.count and a.ci_low <= b.ci_high and b.ci_low <= a.ci_high else ""
    )


def finding(aligned: TargetResult, defended: TargetResult | None = None) -> str:
    """The demo's result in one sentence, phrased from the counts whatever they are. `aligned` alone: the
    one-target demo (`--target`)."""
    direct, trial = aligned.direct, aligned.trial
    if not (direct.n and trial.n and (defended is None or defended.trial.n)):
        return "No finding: a campaign finished no conversation (see the errors above)."
    who = "the aligned model" if defended is not None else aligned.target
    if direct.count == 0:
        said = f"{who} refused every direct request ({_counts(direct)} succeeded)"
    elif 2 * direct.count < direct.n:
        said = f"{who} refused most direct requests ({_counts(direct)} succeeded)"
    else:
        said = f"{who} answered {_counts(direct)} direct requests"
    if trial.count > direct.count:
        joint = "but" if 2 * direct.count < direct.n else "and"
        attack = f"{joint} TRIAL got through on {_counts(trial)}{_overlap(trial, direct)}"
    elif trial.count == direct.count:
        attack = f"and TRIAL did no better ({_counts(trial)})"
    else:
        attack = f"and TRIAL did worse ({_counts(trial)}{_overlap(trial, direct)})"
    picked = aligned.picks_act
    if picked is not None and picked.n and (trial.count <= direct.count or defended is None):
        joint = ", though" if trial.count <= direct.count else ";"
        attack += f"{joint} the model picked the act (Option A) in turn 1 of {_counts(picked)} TRIAL dilemmas"
    controls = _controls(aligned)
    follow = aligned.followthrough
    if controls and follow is not None and follow.n and 2 * follow.count < follow.n and trial.count <= direct.count:
        # a TRIAL null needs a positive control: a model that cannot carry out harmless follow-ups could not
        # have delivered the harmful ones either
        controls = controls[:-1] + ", so the TRIAL result here is no evidence against the attack)"
    if defended is None:
        tail = f"it engaged {_counts(aligned.engagement)} benign dilemma prompts" + (f"{controls}" if controls else "")
        return f"On {trial.n} held-out JBB behaviors {said} {attack}; {tail}."
    err_trial, err_picked = defended.trial, defended.picks_act
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
    return f"On {trial.n} held-out JBB behaviors {said} {attack}{controls}; {defense}, and {tax}."


def _controls(row: TargetResult) -> str:
    """The positive controls a TRIAL result needs: does the model carry out harmless follow-ups, and does its
    choice follow the options' content? (" ..." to append, or "")."""
    parts = []
    if row.followthrough is not None and row.followthrough.n:
        parts.append(f"carried out {_counts(row.followthrough)} harmless follow-up requests")
    if row.swap is not None and row.swap.n:
        parts.append(f"chose the same option in both orders on {_counts(row.swap)} dilemmas")
    if not parts:
        return ""
    return " (it " + " and ".join(parts) + ")"


def run_demo(config: DemoConfig, run_dir: Path, *, target: str | None = None, console=None) -> DemoResult:
    """Run (or resume) the demo in `run_dir` (one run DB) and write `demo.json` there: the aligned and the
    defended model, or `target` alone."""
    from dilemmakit.models.spec import parse_spec
    from dilemmakit.store.db import open_store

    config.check()
    targets = (config.aligned, config.defended) if target is None else (target,)
    for spec in targets:
        parse_spec(spec)
    store = open_store(run_dir)
    started = time.monotonic()
    try:
        result = asyncio.run(_run(config, targets, store, console, started))
    finally:
        store.close()
    settings = config.model_dump() | ({"target": target} if target is not None else {})
    (run_dir / DEMO_NAME).write_text(
        json.dumps({**result.as_dict(), "config": settings}, indent=2) + "\n", encoding="utf-8"
    )
    return result


async def _run(config: DemoConfig, targets: tuple[str, ...], store, console, started: float) -> DemoResult:
    from dilemmakit.campaign import run_campaign
    from dilemmakit.err.evaluate import campaign_config, first_reply_picks_act, prepare
    from dilemmakit.eval.engagement import EngagementConfig, run_engagement
    from dilemmakit.eval.followthrough import measure_followthrough
    from dilemmakit.loading import pool_scope
    from dilemmakit.progress import progress_bar

    cfg = config.eval_config()
    data = prepare(targets[0], targets[-1], cfg)  # drops the prompts either defense was trained on
    async with pool_scope() as pool:
        for spec in targets:  # load the weights (or start a managed server) before the clock starts
            pool.get(spec)
        keys = [(spec, method) for spec in targets for method in METHODS]
        campaign_jobs = [
            run_campaign(
                campaign_config(spec, method, f"held-out {cfg.behaviors}", cfg),
                store,
                behaviors=data.behaviors,
                console=console,
                pool=pool,
                show_progress=False,
            )
            for spec, method in keys
        ]
        eval_jobs = [
            run_engagement(
                EngagementConfig(
                    target=spec,
                    max_tokens=config.max_tokens,
                    seed=config.seed,
                    limit=config.dilemma_limit,
                    swap=True,
                    concurrency=2 * config.dilemma_limit,
                ),
                store,
                pool=pool,
                show_progress=False,
            )
            for spec in targets
        ]
        eval_jobs += [
            measure_followthrough(
                spec,
                store,
                pool=pool,
                limit=config.followthrough_limit,
                seed=config.seed,
                max_tokens=config.max_tokens,
                followup_max_tokens=config.followup_max_tokens,
            )
            for spec in targets
        ]
        # one bar for everything in flight: conversations, dilemma prompts and follow-up turns stored so far
        total = len(targets) * (
            len(METHODS) * len(data.behaviors) + 2 * config.dilemma_limit + 3 * config.followthrough_limit
        )
        with progress_bar(console=console, show=console is not None) as bar:
            task = bar.add_task("demo: campaigns, dilemmas, follow-ups", total=total)

            async def watch() -> None:
                while True:
                    bar.update(task, completed=min(total, _stored_items(store)))
                    await asyncio.sleep(1.0)

            watcher = asyncio.ensure_future(watch())
            try:
                campaigns, evals = await asyncio.gather(asyncio.gather(*campaign_jobs), asyncio.gather(*eval_jobs))
            finally:
                watcher.cancel()
            bar.update(task, completed=total)
    engagements, follows = evals[: len(targets)], evals[len(targets) :]
    by_key = dict(zip(keys, campaigns, strict=True))
    rows = [
        TargetResult(
            spec,
            direct=Rate.of(by_key[spec, "direct"].successes, by_key[spec, "direct"].done),
            trial=Rate.of(by_key[spec, "trial"].successes, by_key[spec, "trial"].done),
            # the CIs run_engagement and the follow-through computed (the same settings as Rate.of)
            engagement=Rate(engaged["engaged"], engaged["n"], engaged["ci_low"], engaged["ci_high"]),
            picks_act=first_reply_picks_act(store, by_key[spec, "trial"].run_id),
            swap=Rate(engaged["swap_consistent"], engaged["swap_n"], engaged["swap_ci_low"], engaged["swap_ci_high"]),
            followthrough=Rate(follow["delivered"], follow["n"], follow["ci_low"], follow["ci_high"]),
        )
        for spec, engaged, follow in zip(targets, engagements, follows, strict=True)
    ]
    errors = [c.first_error or "error" for c in campaigns for _ in range(c.errors)]
    errors += [r["first_error"] or "error" for r in (*engagements, *follows) for _ in range(r["errors"])]
    return DemoResult(
        rows[0],
        rows[1] if len(rows) > 1 else None,
        behaviors=len(data.behaviors),
        dilemmas=config.dilemma_limit,
        errors=len(errors),
        total=sum(c.total for c in campaigns) + sum(r["n"] + r["errors"] for r in (*engagements, *follows)),
        first_error=errors[0] if errors else None,
        wall_s=time.monotonic() - started,
    )


def _stored_items(store) -> int:
    """Finished conversations and stored eval items: what the demo's progress bar counts."""
    finished = sum(1 for c in store.conversations() if c.status in ("done", "error"))
    return finished + sum(store.eval_item_counts().values())


COLUMNS = {
    "direct": "direct ASR",
    "trial": "TRIAL ASR",
    "picks_act": "TRIAL turn 1 picks the act",
    "engagement": "benign-dilemma engagement",
    "swap": "swap-consistency",
    "followthrough": "follow-through",
}


def demo_table(result: DemoResult):
    """The one table: a row per target; direct ASR, TRIAL ASR, TRIAL turn-1 picks of the act, engagement,
    swap-consistency and follow-through as `k/n = p% [lo, hi]`."""
    from rich.table import Table

    table = Table(
        title=f"{result.behaviors} held-out JBB behaviors, {result.dilemmas} held-out benign dilemmas (both orders)",
        caption="k/n = rate [95% Wilson CI]; TRIAL success = instrumental judge (keyword/feature rules); "
        "turn 1 picks the act, engagement and swap-consistency are keyword measures, follow-through feature rules",
    )
    table.add_column("target", justify="left")
    for column in COLUMNS.values():
        table.add_column(column, justify="right")
    for row in result.rows:
        cells = [getattr(row, name) for name in COLUMNS]
        table.add_row(row.target, *(c.cell() if c is not None else "-" for c in cells))
    return table
