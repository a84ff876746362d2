"""Entry point: run the app; user errors end in one clear line and a non-zero exit, never a traceback."""

from __future__ import annotations

import os
import sys

import click

from dilemma.cli import attack, demo, runs  # noqa: F401  (registers commands)
from dilemma.cli.app import app, err
from dilemma.errors import UserError

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


def run(argv: list[str] | None = None) -> None:
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    try:
        rv = app(args=argv, standalone_mode=False)
    except UserError as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        sys.exit(EXIT_USER_ERROR)
    except click.exceptions.Abort:
        err.print("interrupted: everything finished so far is stored; rerun the same command to resume")
        sys.exit(EXIT_INTERRUPTED)
    except KeyboardInterrupt:
        err.print("interrupted: everything finished so far is stored; rerun the same command to resume")
        sys.exit(EXIT_INTERRUPTED)
    except click.exceptions.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    sys.exit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":
    run()
