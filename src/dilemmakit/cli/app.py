"""The Typer app every command module registers on, and the consoles they print to."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

app = typer.Typer(
    name="dilemma",
    help="Attack, explain and defend language models on ethical-dilemma jailbreaks.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
# Piped or logged output (CI, `make demo | tee`) gets wide tables instead of rich's 80-column default.
PIPED_WIDTH = 140
out = Console(width=None if sys.stdout.isatty() else PIPED_WIDTH)
err = Console(stderr=True)
