"""A campaign: one attack method against one target over a set of behaviors, stored and resumable.

Running the same configuration on the same run dir resumes it: finished conversations are kept,
unfinished ones (pending, interrupted or errored) replay their stored turns and carry on.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass, field
from typing import ClassVar, Literal

from rich.console import Console

from dilemmakit.attacks import AttackSettings, Journal, ReplayMismatch, Roles, build_attack
from dilemmakit.attacks.trial import prompt_book
from dilemmakit.behaviors import Behavior, load_behaviors
from dilemmakit.calls import CallStats
from dilemmakit.config import Config, option
from dilemmakit.errors import ModelCallError, UserError
from dilemmakit.judges.instrumental import RULES_VERSION as INSTRUMENTAL_RULES
from dilemmakit.judges.registry import build_judge, judge_identity, split_judge_spec
from dilemmakit.loading import ModelPool, pool_scope, target_identity
from dilemmakit.models.base import GenParams
from dilemmakit.models.secrets import redact
from dilemmakit.models.spec import parse_spec, spec_identity
from dilemmakit.progress import progress_bar
from dilemmakit.store.db import RunStore

TEMPLATE = "template"


class CampaignConfig(Config):
    target: str = option(help="Model spec: embedded | hf:<path> | openai:<model>@<url>")
    method: str = option("trial", "trial | direct | pair | crescendo | actor")
    behaviors: str = option("jbb", "jbb|harmbench|strongreject|advbench or a .csv/.jsonl path")
    prompt_column: str | None = option(None, "Column with the prompts in a file")
    limit: int | None = option(None, "Use N behaviors")
    order: str = option("stratified", "How --limit picks: stratified (categories take turns, seeded) | file (first N)")
    category: str | None = option(None, "Only this category")
    seed: int | None = option(None, "Seed: sampling of --limit and template choices")
    attacker: str = option(TEMPLATE, "Model spec, or 'template' (offline)")
    # defaults to the attacker, as in the paper's code
    helper: str | None = option(None, "Model spec for clue/scenario (default: the attacker)")
    judge: str = option(
        "instrumental", "instrumental | refusal | classifier | <jbb|harmbench|strongreject|clas|xstest>:<model spec>"
    )
    framework: str = option("utilitarian", "utilitarian|deontological|care|virtue")
    max_rounds: int = option(6, "Target turns per conversation (paper: 6)")
    judge_skip_rounds: int = option(2, "Rounds not judged at the start")
    judge_pullback: bool = option(False, "Judge pull-back turns too")
    followup_case: Literal["rule", "attacker"] = option(
        "rule", "TRIAL follow-ups: rule (the paper's three cases, picked by rule) | attacker (the attacker picks)"
    )
    on_helper_failure: Literal["template", "skip"] = option(
        "template",
        "TRIAL helper gives no usable clue/scenario: template (fall back) | skip (a failed attempt, as the authors)",
    )
    target_max_tokens: int = option(1024, "Target max new tokens (paper: 1024)", flag="max-tokens")
    target_temperature: float = option(1.0, "Target sampling temperature")
    attacker_max_tokens: int = option(512, cli=False)
    attacker_temperature: float = option(1.0, "Attacker/helper sampling temperature")
    n_streams: int = option(1, "PAIR: attacker streams taking turns within the --max-rounds queries", ge=1)
    keep_last_n: int = option(4, "PAIR: earlier attempts each stream's attacker sees", ge=1)
    actor_num: int = option(3, "ActorAttack: actors planned and tried in turn within the budget", ge=1)
    concurrency: int = option(8, "Conversations in flight")
    api_key_env: str = option("OPENAI_API_KEY", "Env var holding the API key")

    # Fields that do not change what a conversation is: changing them keeps resuming the same run. Within the
    # model specs, transport options (timeout, concurrency, stream, ...) are left out too (`ModelSpec.identity`).
    NOT_IDENTITY: ClassVar[tuple[str, ...]] = ("limit", "order", "category", "concurrency", "api_key_env")
    # Fields added after runs were stored: left out at their default, so those runs keep their ids.
    IDENTITY_IF_SET: ClassVar[tuple[str, ...]] = (
        "followup_case",
        "on_helper_failure",
        "n_streams",
        "keep_last_n",
        "actor_num",
    )

    def identity(self) -> dict:
        data = self.model_dump()
        for key in self.NOT_IDENTITY:
            data.pop(key, None)
        for key in self.IDENTITY_IF_SET:
            if data.get(key) == type(self).model_fields[key].default:
                data.pop(key, None)
        data.update(
            **target_identity(self.target),
            attacker=_role_identity(self.attacker),
            helper=_role_identity(self.helper_spec),
            judge=judge_identity(self.judge),
        )
        if split_judge_spec(self.judge)[0] == "instrumental":  # its verdicts end conversations: new rules, new run
            data["judge_rules"] = INSTRUMENTAL_RULES
        return data

    def run_config(self, identity: dict | None = None) -> dict:
        """What the run database keeps about the run: its identity, and the sampling each model role runs with
        (a local model's engine defaults filled in; an HTTP model's spec options, its server's defaults apply
        to the rest)."""
        roles = {
            "target": self.target,
            "attacker": self.attacker,
            "helper": self.helper_spec,
            "judge": split_judge_spec(self.judge)[1],
        }
        sampling = {
            role: parse_spec(spec).effective_sampling.as_dict()
            for role, spec in roles.items()
            if spec and spec != TEMPLATE
        }
        return {**(identity or self.identity()), "sampling": sampling}

    @property
    def helper_spec(self) -> str:
        return self.helper or self.attacker

    def run_id(self, identity: dict | None = None) -> str:
        """The run's name: its method and a digest of `identity` (computed when not given)."""
        digest = hashlib.sha256(json.dumps(identity or self.identity(), sort_keys=True).encode()).hexdigest()[:12]
        return f"{self.method}-{digest}"

    def settings(self) -> AttackSettings:
        return AttackSettings(
            max_rounds=self.max_rounds,
            judge_skip_rounds=self.judge_skip_rounds,
            judge_pullback=self.judge_pullback,
            framework=self.framework,
            seed=self.seed or 0,
            followup_case=self.followup_case,
            on_helper_failure=self.on_helper_failure,
            target_params=GenParams(temperature=self.target_temperature, max_tokens=self.target_max_tokens),
            attacker_params=GenParams(temperature=self.attacker_temperature, max_tokens=self.attacker_max_tokens),
            n_streams=self.n_streams,
            keep_last_n=self.keep_last_n,
            actor_num=self.actor_num,
        )

    def check(self) -> None:
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


def _role_identity(spec: str) -> str:
    return spec if spec == TEMPLATE else spec_identity(spec)


@dataclass
class CampaignResult:
    run_id: str
    total: int
    done: int
    successes: int
    errors: int  # conversations that ended in an error (retried by the next run of the same command)
    first_error: str | None = None
    calls: dict[str, CallStats] = field(default_factory=dict)  # this invocation's HTTP calls per model

    @property
    def retries(self) -> dict[str, int]:
        """Retries by cause over every model of this invocation."""
        return sum(self.calls.values(), CallStats()).retries


async def run_campaign(
    config: CampaignConfig,
    store: RunStore,
    *,
    behaviors: list[Behavior] | None = None,
    console: Console | None = None,
    pool: ModelPool | None = None,
    show_progress: bool = True,
) -> CampaignResult:
    """Run (or resume) the campaign. `behaviors`, when given, is the set itself and `config.behaviors` only
    names it (it is part of the run's identity); otherwise the set is loaded from `config.behaviors`."""
    config.check()
    if behaviors is None:
        behaviors = load_behaviors(
            config.behaviors,
            prompt_column=config.prompt_column,
            limit=config.limit,
            category=config.category,
            seed=config.seed,
            order=config.order,
        )
    attack = build_attack(config.method, config.settings())
    console = console or Console(stderr=True)
    async with pool_scope(pool, api_key_env=config.api_key_env, concurrency=max(16, config.concurrency)) as pool:
        roles = _build_roles(config, pool)
        await pool.check_all()
        calls_before = pool.call_stats()
        identity = config.identity()  # reads a defense's weights: once per start
        run_id = config.run_id(identity)
        store.ensure_run(run_id, config.run_config(identity))
        store.ensure_conversations(run_id, config.method, identity["target"], behaviors)
        wanted = {b.id: b for b in behaviors}
        rows = [c for c in store.conversations(run_id) if c.behavior_id in wanted]
        todo = [c for c in rows if c.status != "done"]
        already = len(rows) - len(todo)
        counts = {"successes": sum(1 for c in rows if c.status == "done" and c.success), "errors": 0}
        sem = asyncio.Semaphore(config.concurrency)

        progress = progress_bar(
            "success {task.fields[successes]}  errors {task.fields[errors]}", console=console, show=show_progress
        )

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
                    store.finish(
                        row.id,
                        success=outcome.success,
                        rounds=outcome.rounds,
                        queries=journal.target_turns(),
                        broken_turn=outcome.broken_turn,
                        final_score=journal.best_score(roles.judge.name),
                    )
                    counts["successes"] += int(outcome.success)
                progress.update(task, advance=1, successes=counts["successes"], errors=counts["errors"])

        with progress:
            task = progress.add_task(
                f"{config.method} vs {redact(config.target)}",
                total=len(rows),
                completed=already,
                successes=counts["successes"],
                errors=0,
            )
            try:
                async with asyncio.TaskGroup() as group:
                    for row in todo:
                        group.create_task(one(row))
            except* UserError as eg:
                raise eg.exceptions[0] from None
            finally:
                calls = _calls_since(calls_before, pool.call_stats())
                store.add_call_stats(run_id, calls)
        final = [c for c in store.conversations(run_id) if c.behavior_id in wanted]
        done = [c for c in final if c.status == "done"]
        failed = [c for c in final if c.status == "error"]
        return CampaignResult(
            run_id,
            len(rows),
            len(done),
            sum(1 for c in done if c.success),
            len(failed),
            first_error=failed[0].error if failed else None,
            calls=calls,
        )


def _calls_since(before: dict[str, CallStats], after: dict[str, CallStats]) -> dict[str, CallStats]:
    """The HTTP calls made between two `ModelPool.call_stats()` snapshots, per model (models with no calls
    left out): a pool shared by several campaigns counts each campaign's own calls."""
    since = {name: now - before.get(name, CallStats()) for name, now in after.items()}
    return {name: delta for name, delta in since.items() if delta.calls}


def _build_roles(config: CampaignConfig, pool: ModelPool) -> Roles:
    _, judge_model_spec = split_judge_spec(config.judge)
    judge_model = pool.get(judge_model_spec) if judge_model_spec else None
    return Roles(
        target=pool.get(config.target),
        judge=build_judge(config.judge, judge_model),
        attacker=None if config.attacker == TEMPLATE else pool.get(config.attacker),
        helper=None if config.helper_spec == TEMPLATE else pool.get(config.helper_spec),
    )
