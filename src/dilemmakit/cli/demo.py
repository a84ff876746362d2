"""`dilemma demo`: the paper's finding in one offline run (see `dilemmakit.demo`)."""

from __future__ import annotations

from pathlib import Path

import typer

from dilemmakit.cli.app import app, err, out
from dilemmakit.cli.options import config_options
from dilemmakit.demo import DemoConfig
from dilemmakit.errors import FailedCalls


@app.command()
@config_options
def demo(
    config: DemoConfig,
    run_dir: Path = typer.Option(Path("runs/demo"), "--run-dir", help="Run database and report; rerun to resume"),
    target: str | None = typer.Option(
        None,
        "--target",
        help="Demo one model we did not train instead (e.g. real-qwen): the same measures, no ERR row",
    ),
) -> None:
    """Offline, on held-out JBB behaviors: direct requests and TRIAL against an aligned model and against it
    with ERR, plus benign dilemmas in both option orders and harmless follow-ups; one table, one sentence, and
    the HTML report."""
    from dilemmakit.demo import demo_table, run_demo
    from dilemmakit.report import write_report

    config.check()
    if target is None:
        err.print("loading the embedded models (the first load converts the GGUF, ~40 s; later loads are quick)")
    else:
        err.print(f"demo on {target} (a real-model spec starts its llama.cpp server first: a few seconds)")
    result = run_demo(config, run_dir, target=target, console=err)
    out.print(demo_table(result))
    out.print(result.finding, highlight=False, soft_wrap=True)
    if result.wall_s is not None:
        out.print(f"wall time {result.wall_s:.0f} s after loading", highlight=False)
    out.print(f"run stored in {run_dir.resolve()} (dilemma summary/export --run-dir {run_dir})", soft_wrap=True)
    out.print(f"report: {write_report(run_dir).resolve()}", highlight=False, soft_wrap=True)
    if result.errors:
        raise FailedCalls(result.errors, result.total, "conversations, dilemmas and follow-ups", result.first_error)
