"""A campaign: one attack method against one target over a set of behaviors, stored and resumable.

Running the same configuration on the same run dir resumes it: finished conversations are kept,
unfinished ones (pending, interrupted or errored) replay their stored turns and carry on.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import asdict, dataclass, field

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from dilemma.attacks import AttackSettings, Roles, build_attack
from dilemma.attacks.journal import Journal, ReplayMismatch
from dilemma.attacks.trial.prompts import prompt_book
from dilemma.behaviors import load_behaviors
from dilemma.errors import ModelCallError, UserError
from dilemma.judges.registry import build_judge, split_judge_spec
from dilemma.models.base import GenParams
from dilemma.models.pool import ModelPool
from dilemma.models.spec import parse_spec
from dilemma.store.db import RunStore

TEMPLATE = "template"


@dataclass
class CampaignConfig:
    target: str
    method: str = "trial"
    behaviors: str = "jbb"
    prompt_column: str | None = None
    limit: int | None = None
    category: str | None = None
    seed: int | None = None
    attacker: str = TEMPLATE
    helper: str | None = None  # defaults to the attacker, as in the paper's code
    judge: str = "refusal"
    framework: str = "utilitarian"
    max_rounds: int = 6
    judge_skip_rounds: int = 2
    judge_pullback: bool = False
    target_max_tokens: int = 1024
    target_temperature: float = 1.0
    attacker_max_tokens: int = 512
    attacker_temperature: float = 1.0
    concurrency: int = 8
    api_key_env: str = field(default="OPENAI_API_KEY")

    # Fields that do not change what a conversation is: changing them keeps resuming the same run.
    _NOT_IDENTITY = ("limit", "category", "concurrency", "api_key_env")

    def identity(self) -> dict:
        data = asdict(self)
        for key in self._NOT_IDENTITY:
            data.pop(key, None)
        data["helper"] = self.helper_spec
        return data

    @property
    def helper_spec(self) -> str:
        return self.helper or self.attacker

    def run_id(self) -> str:
        digest = hashlib.sha256(json.dumps(self.identity(), sort_keys=True).encode()).hexdigest()[:12]
        return f"{self.method}-{digest}"

    def settings(self) -> AttackSettings:
        return AttackSettings(
            max_rounds=self.max_rounds, judge_skip_rounds=self.judge_skip_rounds, judge_pullback=self.judge_pullback,
            framework=self.framework, seed=self.seed or 0,
            target_params=GenParams(temperature=self.target_temperature, max_tokens=self.target_max_tokens),
            attacker_params=GenParams(temperature=self.attacker_temperature, max_tokens=self.attacker_max_tokens),
        )

    def validate(self) -> None:
        """Check everything that needs no model, so a typo fails before minutes of loading."""
        if self.max_rounds < 1:
            raise UserError("--max-rounds must be at least 1")
        if self.concurrency < 1:
            raise UserError("--concurrency must be at least 1")
        if self.target_max_tokens < 1 or self.attacker_max_tokens < 1:
            raise UserError("max tokens must be at least 1")
        parse_spec(self.target)
        for spec in (self.attacker, self.helper_spec):
            if spec != TEMPLATE:
                parse_spec(spec)
        _, judge_model = split_judge_spec(self.judge)
        if judge_model:
            parse_spec(judge_model)
        prompt_book().framework(self.framework)
        build_attack(self.method, self.settings())


@dataclass
class CampaignResult:
    run_id: str
    total: int
    done: int
    successes: int
    errors: int


async def run_campaign(config: CampaignConfig, store: RunStore, *, console: Console | None = None,
                       pool: ModelPool | None = None, show_progress: bool = True) -> CampaignResult:
    config.validate()
    behaviors = load_behaviors(config.behaviors, prompt_column=config.prompt_column, limit=config.limit,
                               category=config.category, seed=config.seed)
    attack = build_attack(config.method, config.settings())
    console = console or Console(stderr=True)
    own_pool = pool is None
    pool = pool or ModelPool(api_key_env=config.api_key_env, concurrency=max(16, config.concurrency))
    try:
        roles = _build_roles(config, pool)
        await pool.check_all()
        run_id = config.run_id()
        store.ensure_run(run_id, config.identity())
        store.ensure_conversations(run_id, config.method, config.target, behaviors)
        wanted = {b.id: b for b in behaviors}
        rows = [c for c in store.conversations(run_id) if c.behavior_id in wanted]
        todo = [c for c in rows if c.status != "done"]
        already = len(rows) - len(todo)
        counts = {"successes": sum(1 for c in rows if c.status == "done" and c.success), "errors": 0}
        sem = asyncio.Semaphore(config.concurrency)

        progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("success {task.fields[successes]}  errors {task.fields[errors]}"),
                            TimeElapsedColumn(), console=console, disable=not show_progress, transient=False)

        async def one(row):
            async with sem:
                store.mark_running(row.id)
                journal = Journal(store, row.id)
                try:
                    outcome = await attack.run(wanted[row.behavior_id], roles, journal)
                except UserError:
                    raise
                except (ModelCallError, ReplayMismatch) as exc:
                    store.mark_error(row.id, str(exc))
                    counts["errors"] += 1
                except Exception as exc:  # a bug or an unexpected backend failure: keep the campaign going
                    store.mark_error(row.id, f"{type(exc).__name__}: {exc}")
                    counts["errors"] += 1
                else:
                    store.finish(row.id, success=outcome.success, rounds=outcome.rounds,
                                 queries=journal.target_turns(), broken_turn=outcome.broken_turn,
                                 final_score=journal.best_score(roles.judge.name))
                    counts["successes"] += int(outcome.success)
                progress.update(task, advance=1, successes=counts["successes"], errors=counts["errors"])

        with progress:
            task = progress.add_task(f"{config.method} vs {config.target}", total=len(rows), completed=already,
                                     successes=counts["successes"], errors=0)
            try:
                async with asyncio.TaskGroup() as group:
                    for row in todo:
                        group.create_task(one(row))
            except* UserError as eg:
                raise eg.exceptions[0] from None
        done = [c for c in store.conversations(run_id) if c.behavior_id in wanted and c.status == "done"]
        return CampaignResult(run_id, len(rows), len(done), sum(1 for c in done if c.success), counts["errors"])
    finally:
        if own_pool:
            await pool.aclose()


def _build_roles(config: CampaignConfig, pool: ModelPool) -> Roles:
    _, judge_model_spec = split_judge_spec(config.judge)
    judge_model = pool.get(judge_model_spec) if judge_model_spec else None
    return Roles(
        target=pool.get(config.target),
        judge=build_judge(config.judge, judge_model),
        attacker=None if config.attacker == TEMPLATE else pool.get(config.attacker),
        helper=None if config.helper_spec == TEMPLATE else pool.get(config.helper_spec),
    )
