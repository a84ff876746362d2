"""`dilemma attack`: run (or resume) a campaign into a run dir."""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer

from dilemmakit.attacks import methods_help
from dilemmakit.campaign import CampaignConfig, CampaignResult, run_campaign
from dilemmakit.cli.app import app, err, out
from dilemmakit.cli.options import config_options
from dilemmakit.errors import FailedCalls
from dilemmakit.eval.summary import summarise, summary_tables
from dilemmakit.store.db import open_store


@app.command(help=f"Run an attack campaign ({methods_help()}); every turn is committed as it happens.")
@config_options
def attack(
    config: CampaignConfig,
    run_dir: Path = typer.Option(..., "--run-dir", help="Where the run database lives; rerun to resume"),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar or table"),
) -> None:
    """Run an attack campaign with the method and options of `config` (help: the registered methods)."""
    config.check()
    store = open_store(run_dir)
    try:
        result = asyncio.run(run_campaign(config, store, console=err, show_progress=not quiet))
        if not quiet:
            for table in summary_tables(summarise(store))[:1]:
                out.print(table)
    finally:
        store.close()
    err.print(
        f"run {result.run_id}: {result.done}/{result.total} finished, {result.successes} successes, "
        f"{result.errors} errors{retries_note(result)}; stored in {run_dir}",
        highlight=False,
        soft_wrap=True,
    )
    if result.errors:
        raise FailedCalls(result.errors, result.total, "conversations", result.first_error)


def retries_note(result: CampaignResult) -> str:
    """ ", retries: 3 (timeout: 2, 429: 1)" for the end-of-run line: the HTTP client's retries in this
    invocation (empty when it made no HTTP calls)."""
    if not result.calls:
        return ""
    retries = result.retries
    causes = ", ".join(f"{cause}: {n}" for cause, n in sorted(retries.items()))
    return f", retries: {sum(retries.values())}" + (f" ({causes})" if causes else "")
