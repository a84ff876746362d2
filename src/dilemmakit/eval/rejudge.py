"""`dilemma rejudge`: score the stored replies of a run again with another judge, without re-attacking.

Every reply a judge scored during the attack (the replies of finished conversations that hold a verdict)
is judged again by the new judge, with the same context the attack's judge had (the conversation up to and
including the reply). The new verdicts are stored beside the originals under the new judge's name
(the verdicts table is keyed by conversation, turn and judge: nothing is overwritten). Each verdict is
committed as it comes, so an interrupted rejudge loses at most the calls in flight: a rerun skips the
replies already judged and retries the ones that got a judge error.

The whole conversation's verdict under the new judge follows from its replies, as the attack decides
it: a success iff the judge calls one of them a success (`dilemma summary --judge NAME`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace

from rich.console import Console

from dilemmakit.behaviors import Behavior
from dilemmakit.config import Config, option
from dilemmakit.errors import UserError
from dilemmakit.judges.registry import build_judge, judge_identity, judges_help, parse_judge_spec
from dilemmakit.loading import pool_scope
from dilemmakit.models.base import Message
from dilemmakit.models.spec import parse_spec
from dilemmakit.progress import progress_bar
from dilemmakit.store.db import ConversationRow, RunStore, TurnRecord
from dilemmakit.verdict import ERROR, SUCCESS, Verdict

DEFAULT_CONCURRENCY = 16


class RejudgeConfig(Config):
    judge: str = option(help=judges_help())
    name: str | None = option(None, "Name to store the verdicts under (default: the judge spec)", flag="as")
    concurrency: int | None = option(
        None, "Judge calls in flight (default: the judge endpoint's ?concurrency=, 16)", ge=1
    )
    api_key_env: str = option("OPENAI_API_KEY", "Env var holding the API key")

    @property
    def judge_name(self) -> str:
        """What the verdicts are stored under: --as, else the judge as runs name it (no transport options)."""
        return self.name.strip() if self.name else judge_identity(self.judge)

    def check(self) -> None:
        _, model_spec, _ = parse_judge_spec(self.judge)
        if model_spec:
            parse_spec(model_spec)
        if self.name is not None and not self.name.strip():
            raise UserError("--as needs a name")


@dataclass
class RejudgeResult:
    judge: str
    replies: int  # replies of the run that a judge scored
    judged: int  # judged by this call
    skipped: int  # already judged by an earlier call
    successes: int  # of those judged by this call
    errors: int  # judge errors of this call (stored as errors; a rerun retries them)
    first_error: str | None = None

    def as_dict(self) -> dict:
        return {
            "judge": self.judge,
            "replies": self.replies,
            "judged": self.judged,
            "skipped": self.skipped,
            "successes": self.successes,
            "errors": self.errors,
        }


@dataclass(frozen=True)
class _Job:
    conversation: ConversationRow
    turn_idx: int
    retry: bool  # an earlier call stored a judge error for this reply: replace it


def _context(turns: list[TurnRecord], idx: int) -> list[Message]:
    """The conversation the target had seen up to and including reply `idx` (what the attack's judge got)."""
    return [{"role": t.role, "content": t.content} for t in turns if t.idx <= idx and t.role in ("user", "assistant")]


def plan(store: RunStore, name: str) -> tuple[list[_Job], int]:
    """(jobs to run, replies in all): every reply of a finished conversation that another judge scored."""
    rows = store.verdict_rows()
    added = store.judge_specs()  # judges an earlier rejudge stored; every other one judged an attack
    if any(r.judge == name and name not in added for r in rows):
        raise UserError(
            f"{name!r} is the judge this run was attacked with: give the new verdicts a name of their own with --as NAME"
        )
    finished = {c.id: c for c in store.conversations() if c.status == "done"}
    mine: dict[tuple[int, int], str] = {}
    replies: set[tuple[int, int]] = set()
    for r in rows:
        if r.conversation_id not in finished:
            continue
        if r.judge == name:
            mine[(r.conversation_id, r.turn_idx)] = r.label
        else:
            replies.add((r.conversation_id, r.turn_idx))
    jobs = [
        _Job(finished[cid], idx, retry=(cid, idx) in mine)
        for cid, idx in sorted(replies)
        if mine.get((cid, idx)) in (None, ERROR)
    ]
    return jobs, len(replies)


async def run_rejudge(
    config: RejudgeConfig, store: RunStore, *, console: Console | None = None, show_progress: bool = True
) -> RejudgeResult:
    config.check()
    name = config.judge_name
    spec = judge_identity(config.judge)
    recorded = store.judge_specs().get(name)
    if recorded is not None and recorded != spec:
        raise UserError(f"verdicts named {name!r} come from judge {recorded!r}, not {spec!r}: pick another --as NAME")
    jobs, total = plan(store, name)
    result = RejudgeResult(name, total, 0, total - len(jobs), 0, 0)
    if not jobs:
        return result
    _, model_spec, _ = parse_judge_spec(config.judge)  # the model as given, transport options included
    async with pool_scope(
        api_key_env=config.api_key_env, concurrency=config.concurrency or DEFAULT_CONCURRENCY
    ) as pool:
        model = pool.get(model_spec) if model_spec else None
        judge = build_judge(config.judge, model)
        await pool.check_all()
        store.set_judge_spec(name, spec)
        # as many judge calls in flight as the judge's endpoint takes (its spec's ?concurrency=)
        sem = asyncio.Semaphore(config.concurrency or getattr(model, "concurrency", None) or DEFAULT_CONCURRENCY)
        turns: dict[int, list[TurnRecord]] = {}
        progress = progress_bar(
            "success {task.fields[successes]}  errors {task.fields[errors]}",
            console=console or Console(stderr=True),
            show=show_progress,
        )

        async def one(job: _Job) -> None:
            c = job.conversation
            if c.id not in turns:
                turns[c.id] = store.turns(c.id)
            reply = next((t for t in turns[c.id] if t.idx == job.turn_idx), None)
            if reply is None:  # a verdict whose turn is not stored: nothing to judge
                return
            behavior = Behavior(c.behavior_id, c.behavior, c.category)
            async with sem:
                try:
                    verdict = await judge.judge(behavior, reply.content, _context(turns[c.id], job.turn_idx))
                except UserError:
                    raise
                except Exception as exc:  # a judge bug or an unexpected backend failure: stored, retried on rerun
                    verdict = Verdict(ERROR, None, reason=f"{type(exc).__name__}: {exc}"[:2000])
            verdict = replace(verdict, judge=name, turn_idx=job.turn_idx)
            if job.retry:
                store.replace_verdict(c.id, verdict)
            else:
                store.add_verdict(c.id, verdict)
            result.judged += 1
            result.successes += int(verdict.label == SUCCESS)
            if verdict.label == ERROR:
                result.errors += 1
                result.first_error = result.first_error or verdict.reason
            progress.update(task, advance=1, successes=result.successes, errors=result.errors)

        with progress:
            task = progress.add_task(f"rejudge {name}", total=total, completed=result.skipped, successes=0, errors=0)
            try:
                async with asyncio.TaskGroup() as group:
                    for job in jobs:
                        group.create_task(one(job))
            except* UserError as eg:
                raise eg.exceptions[0] from None
    return result
