"""Entry point: run the app; user errors end in one clear line and a non-zero exit, never a traceback."""

from __future__ import annotations

import os
import sqlite3
import sys

import typer

from dilemmakit.cli import (  # noqa: F401  (registers commands)
    attack,
    config,
    defend,
    demo,
    evals,
    judges,
    models,
    probe,
    rejudge,
    report,
    runs,
    serve,
)
from dilemmakit.cli.app import PIPED_WIDTH, app, err
from dilemmakit.errors import FailedCalls, ModelCallError, UserError

try:  # typer >= 0.20 vendors click; older versions use click itself
    from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError
except ImportError:  # pragma: no cover
    from click.exceptions import ClickException, NoArgsIsHelpError, UsageError  # type: ignore

EXIT_USER_ERROR = 2  # a problem the user can fix: bad option, spec, file, key, unreachable endpoint
EXIT_FAILED_CALLS = 3  # the command finished, but some conversations/items ended in failed calls (rerun to retry)
EXIT_INTERRUPTED = 130
INTERRUPTED = "interrupted: everything finished so far is stored; rerun the same command to resume"


def _one_line(message: str) -> None:
    err.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True, markup=True)


def run(argv: list[str] | None = None) -> None:
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    if not sys.stdout.isatty() and "COLUMNS" not in os.environ:
        # `--help | less`: typer's help panels as wide as our piped tables, not 80 columns of wrapped words
        # (typer reads TERMINAL_WIDTH when it first draws help).
        os.environ.setdefault("TERMINAL_WIDTH", str(PIPED_WIDTH))
    try:
        rv = app(args=config.hoist_config(sys.argv[1:] if argv is None else list(argv)), standalone_mode=False)
    except UserError as exc:
        _one_line(str(exc).replace("[", "\\["))
        sys.exit(EXIT_USER_ERROR)
    except FailedCalls as exc:
        _one_line(str(exc).replace("[", "\\["))
        sys.exit(EXIT_FAILED_CALLS)
    except sqlite3.DatabaseError as exc:  # a run database that broke after it was opened (store/ words the rest)
        _one_line(f"run database error: {exc}; nothing stored so far is lost".replace("[", "\\["))
        sys.exit(EXIT_USER_ERROR)
    except ModelCallError as exc:  # campaigns store these per conversation; anywhere else it ends the command
        _one_line(f"{exc} (check that the endpoint is up and its spec and API key are right)".replace("[", "\\["))
        sys.exit(EXIT_USER_ERROR)
    except NoArgsIsHelpError as exc:
        exc.show()
        sys.exit(0)
    except UsageError as exc:
        command = exc.ctx.command_path if exc.ctx is not None else "dilemma"
        _one_line(f"{exc.format_message()} (see `{command} --help`)".replace("[", "\\["))
        sys.exit(EXIT_USER_ERROR)
    except ClickException as exc:
        _one_line(exc.format_message().replace("[", "\\["))
        sys.exit(exc.exit_code or 1)
    except (KeyboardInterrupt, typer.Abort):
        err.print(INTERRUPTED, highlight=False, soft_wrap=True)
        sys.exit(EXIT_INTERRUPTED)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    if rv == EXIT_INTERRUPTED:  # typer turns Ctrl-C inside a command into this return value, not an exception
        err.print(INTERRUPTED, highlight=False, soft_wrap=True)
    sys.exit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":
    run()
