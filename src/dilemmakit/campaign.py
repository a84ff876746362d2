"""A campaign: one attack method against one target over a set of behaviors, stored and resumable.

Running the same configuration on the same run dir resumes it: finished conversations are kept,
unfinished ones (pending, interrupted or errored) replay their stored turns and carry on.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from pydantic import Field, SerializeAsAny, model_validator
from rich.console import Console

from dilemmakit.attacks import (
    AttackOptions,
    AttackSettings,
    Journal,
    ReplayMismatch,
    Roles,
    build_attack,
    methods_help,
    option_fields,
)
from dilemmakit.attacks import method as attack_method
from dilemmakit.attacks.trial import prompt_book
from dilemmakit.behaviors import Behavior, behaviors_help, load_behaviors
from dilemmakit.calls import CallStats
from dilemmakit.config import Config, identity_of, option
from dilemmakit.errors import ModelCallError, UserError
from dilemmakit.judges.instrumental import RULES_VERSION as INSTRUMENTAL_RULES
from dilemmakit.judges.registry import JudgeSpec, build_judge, judges_help, read_judge_spec
from dilemmakit.loading import ModelPool, pool_scope, target_identity
from dilemmakit.models.base import GenParams
from dilemmakit.models.secrets import redact
from dilemmakit.models.spec import ModelSpec, parse_spec
from dilemmakit.progress import progress_bar
from dilemmakit.store.db import RunStore

TEMPLATE = "template"


class CampaignConfig(Config):
    target: str = option(help="Model spec: embedded | hf:<path> | openai:<model>@<url>")
    method: str = option("trial", methods_help())
    behaviors: str = option("jbb", f"{behaviors_help()} or a .csv/.jsonl path")
    prompt_column: str | None = option(None, "Column with the prompts in a file")
    limit: int | None = option(None, "Use N behaviors", identity=False, ge=1)
    order: str = option(
        "stratified", "How --limit picks: stratified (categories take turns, seeded) | file (first N)", identity=False
    )
    category: str | None = option(None, "Only this category", identity=False)
    seed: int | None = option(None, "Seed: sampling of --limit and template choices")
    attacker: str = option(TEMPLATE, "Model spec, or 'template' (offline)")
    # defaults to the attacker, as in the paper's code
    helper: str | None = option(None, "Model spec for clue/scenario (default: the attacker)")
    judge: str = option("instrumental", judges_help())
    framework: str = option("utilitarian", "utilitarian|deontological|care|virtue")
    max_rounds: int = option(6, "Target turns per conversation (paper: 6)", ge=1)
    judge_skip_rounds: int = option(2, "Rounds not judged at the start")
    judge_pullback: bool = option(False, "Judge pull-back turns too")
    target_max_tokens: int = option(1024, "Target max new tokens (paper: 1024)", flag="max-tokens", ge=1)
    target_temperature: float = option(1.0, "Target sampling temperature")
    attacker_max_tokens: int = option(512, cli=False, ge=1)
    attacker_temperature: float = option(1.0, "Attacker/helper sampling temperature")
    concurrency: int = option(8, "Conversations in flight", ge=1, identity=False)
    api_key_env: str = option("OPENAI_API_KEY", "Env var holding the API key", identity=False)
    # The method's own options (`attacks.registry`): given flat (`n_streams=2`, as the command line and
    # config files write them) or as the method's `AttackOptions`; another method's options are ignored.
    options: SerializeAsAny[AttackOptions] = Field(
        default_factory=AttackOptions, exclude=True, json_schema_extra={"no_cli": True}
    )

    @model_validator(mode="before")
    @classmethod
    def _method_options(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        chosen = data.get("method", cls.model_fields["method"].default)
        model = attack_method(chosen).options if isinstance(chosen, str) else AttackOptions
        flat = {name: data[name] for name in option_fields() if name in data}
        rest = {k: v for k, v in data.items() if k not in flat}
        given = rest.get("options")
        if isinstance(given, AttackOptions) and not isinstance(given, model):
            raise ValueError(f"options: {type(given).__name__} are not the options of method {chosen!r}")
        if given is None or flat:  # a ValidationError here names the option's own field
            base = given.model_dump() if isinstance(given, AttackOptions) else dict(given or {})
            rest["options"] = model(**{**base, **{k: v for k, v in flat.items() if k in model.model_fields}})
        return rest

    @classmethod
    def extra_cli_fields(cls) -> dict[str, Any]:
        """Command-line options beyond the fields: every registered method's own (`attacks.registry`)."""
        return {name: field for name, (_, field) in option_fields().items()}

    def identity(self, specs: RoleSpecs | None = None) -> dict:
        """What the run is, as each field declares (`option(identity=...)`): the method's options flat beside
        the campaign's. Within the model specs, transport options (timeout, concurrency, stream, ...) are left
        out too (`ModelSpec.identity`). `specs`: the parsed role specs (read here when not given)."""
        specs = specs or RoleSpecs.read(self)
        return {**identity_of(self), **identity_of(self.options), **specs.identity()}

    def run_config(self, identity: dict | None = None, specs: RoleSpecs | None = None) -> dict:
        """What the run database keeps about the run: its identity, and the sampling each model role runs with
        (a local model's engine defaults filled in; an HTTP model's spec options, its server's defaults apply
        to the rest)."""
        specs = specs or RoleSpecs.read(self)
        return {**(identity or self.identity(specs)), "sampling": specs.sampling()}

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
            target_params=GenParams(temperature=self.target_temperature, max_tokens=self.target_max_tokens),
            attacker_params=GenParams(temperature=self.attacker_temperature, max_tokens=self.attacker_max_tokens),
        )

    def check(self) -> RoleSpecs:
        """Check everything that needs no model, so a typo fails before minutes of loading (ranges and the
        method are checked when the config is built); returns the parsed role specs for the rest of the start."""
        specs = RoleSpecs.read(self)
        prompt_book().framework(self.framework)
        build_attack(self.method, self.settings(), self.options)
        return specs


@dataclass(frozen=True)
class RoleSpecs:
    """A campaign's model roles, each spec parsed once per start (`CampaignConfig.check` returns them): what the
    run's identity, its stored sampling and the loaded roles are read from. attacker/helper: None for the template."""

    target: ModelSpec
    attacker: ModelSpec | None
    helper: ModelSpec | None
    judge: JudgeSpec

    @classmethod
    def read(cls, config: CampaignConfig) -> RoleSpecs:
        """Parse the config's role specs; UserError names the first bad one (target, attacker, helper, judge)."""
        return cls(
            target=parse_spec(config.target),
            attacker=None if config.attacker == TEMPLATE else parse_spec(config.attacker),
            helper=None if config.helper_spec == TEMPLATE else parse_spec(config.helper_spec),
            judge=read_judge_spec(config.judge),
        )

    def identity(self) -> dict:
        """The roles' part of the run identity (reads a defense's weights, see `target_identity`)."""
        data = {
            **target_identity(self.target),
            "attacker": _role_identity(self.attacker),
            "helper": _role_identity(self.helper),
            "judge": self.judge.identity,
        }
        if self.judge.prefix == "instrumental":  # its verdicts end conversations: new rules, new run
            data["judge_rules"] = INSTRUMENTAL_RULES
        return data

    def sampling(self) -> dict:
        """The sampling each model role runs with, by role (the template and offline judges have none)."""
        models = {"target": self.target, "attacker": self.attacker, "helper": self.helper, "judge": self.judge.model}
        return {role: spec.effective_sampling.as_dict() for role, spec in models.items() if spec is not None}

    def load_roles(self, pool: ModelPool) -> Roles:
        judge_model = None if self.judge.model is None else pool.get(self.judge.model)
        return Roles(
            target=pool.get(self.target),
            judge=build_judge(self.judge, judge_model),
            attacker=None if self.attacker is None else pool.get(self.attacker),
            helper=None if self.helper is None else pool.get(self.helper),
        )


def _role_identity(spec: ModelSpec | None) -> str:
    return TEMPLATE if spec is None else spec.identity


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
    specs = config.check()
    if behaviors is None:
        behaviors = load_behaviors(
            config.behaviors,
            prompt_column=config.prompt_column,
            limit=config.limit,
            category=config.category,
            seed=config.seed,
            order=config.order,
        )
    attack = build_attack(config.method, config.settings(), config.options)
    console = console or Console(stderr=True)
    async with pool_scope(pool, api_key_env=config.api_key_env, concurrency=max(16, config.concurrency)) as pool:
        roles = specs.load_roles(pool)
        await pool.check_all()
        calls_before = pool.call_stats()
        identity = config.identity(specs)  # reads a defense's weights: once per start
        run_id = config.run_id(identity)
        store.ensure_run(run_id, config.run_config(identity, specs))
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
