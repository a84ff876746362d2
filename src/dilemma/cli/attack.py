"""`dilemma attack`: run (or resume) a campaign into a run dir."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Optional

import typer

from dilemma.campaign import CampaignConfig, run_campaign
from dilemma.cli.app import app, err, out
from dilemma.eval.summary import summarise, summary_tables
from dilemma.store.db import open_store


@app.command()
def attack(
    target: str = typer.Option(..., "--target", help="Model spec: embedded | hf:<path> | openai:<model>@<url>"),
    run_dir: Path = typer.Option(..., "--run-dir", help="Where the run database lives; rerun to resume"),
    behaviors: str = typer.Option("jbb", "--behaviors", help="jbb|harmbench|strongreject|advbench or a .csv/.jsonl path"),
    method: str = typer.Option("trial", "--method", help="trial | direct | pair | crescendo | actor"),
    attacker: str = typer.Option("template", "--attacker", help="Model spec, or 'template' (offline)"),
    helper: Optional[str] = typer.Option(None, "--helper", help="Model spec for clue/scenario (default: the attacker)"),
    judge: str = typer.Option("refusal", "--judge", help="refusal | classifier | <jbb|harmbench|strongreject|clas|xstest>:<model spec>"),
    framework: str = typer.Option("utilitarian", "--framework", help="utilitarian|deontological|care|virtue"),
    max_rounds: int = typer.Option(6, "--max-rounds", help="Target turns per conversation (paper: 6)"),
    judge_skip_rounds: int = typer.Option(2, "--judge-skip-rounds", help="Rounds not judged at the start"),
    judge_pullback: bool = typer.Option(False, "--judge-pullback/--no-judge-pullback", help="Judge pull-back turns too"),
    max_tokens: int = typer.Option(1024, "--max-tokens", help="Target max new tokens (paper: 1024)"),
    target_temperature: float = typer.Option(1.0, "--target-temperature"),
    attacker_temperature: float = typer.Option(1.0, "--attacker-temperature"),
    prompt_column: Optional[str] = typer.Option(None, "--prompt-column", help="Column with the prompts in a file"),
    limit: Optional[int] = typer.Option(None, "--limit", help="Use N behaviors"),
    category: Optional[str] = typer.Option(None, "--category", help="Only this category"),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed: sampling of --limit and template choices"),
    concurrency: int = typer.Option(8, "--concurrency", help="Conversations in flight"),
    api_key_env: str = typer.Option("OPENAI_API_KEY", "--api-key-env", help="Env var holding the API key"),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar or table"),
) -> None:
    """Run an attack campaign (trial, or a baseline: direct, pair, crescendo, actor); every turn is committed as it happens."""
    config = CampaignConfig(
        target=target, method=method, behaviors=behaviors, prompt_column=prompt_column, limit=limit,
        category=category, seed=seed, attacker=attacker, helper=helper, judge=judge, framework=framework,
        max_rounds=max_rounds, judge_skip_rounds=judge_skip_rounds, judge_pullback=judge_pullback,
        target_max_tokens=max_tokens, target_temperature=target_temperature,
        attacker_temperature=attacker_temperature, concurrency=concurrency, api_key_env=api_key_env,
    )
    config.validate()
    store = open_store(run_dir)
    try:
        result = asyncio.run(run_campaign(config, store, console=err, show_progress=not quiet))
        if not quiet:
            for table in summary_tables(summarise(store))[:1]:
                out.print(table)
    finally:
        store.close()
    err.print(f"run {result.run_id}: {result.done}/{result.total} finished, {result.successes} successes, "
              f"{result.errors} errors; stored in {run_dir}")
    if result.errors:
        err.print("some conversations ended in errors (see `dilemma export`); rerun the same command to retry them")
