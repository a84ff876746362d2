"""Command-line options derived from config models, so a default or a help text is written once.

A command names a model in its signature; `@config_options` turns each of the model's fields into a
flag (the field's default and description) and calls the command with a validated instance:

    @app.command()
    @config_options
    def overrefusal(config: OverRefusalConfig, as_json: bool = typer.Option(False, "--json")) -> None:
        ...

Options that belong to the command and not to the workflow (`--run-dir`, `--json`) stay plain typer
options next to the model. A value the model rejects ends in one line naming the flag.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, get_type_hints

import typer
from pydantic import ValidationError

from dilemmakit.config import Config, cli_meta
from dilemmakit.errors import UserError

try:  # typer >= 0.20 vendors click; older versions use click itself
    from typer._click.core import ParameterSource
    from typer._click.globals import get_current_context
except ImportError:  # pragma: no cover
    from click.core import ParameterSource  # type: ignore
    from click.globals import get_current_context  # type: ignore


def cli_fields(model: type[Config]) -> dict[str, Any]:
    """The fields of a model that are command-line options, by field name (with `Config.extra_cli_fields`)."""
    own = {name: field for name, field in model.model_fields.items() if not cli_meta(field).get("no_cli")}
    return {**own, **model.extra_cli_fields()}


def flag(model: type[Config], name: str) -> str:
    field = cli_fields(model).get(name) or model.model_fields.get(name)
    return "--" + ((cli_meta(field).get("flag") if field else None) or name.replace("_", "-"))


def cli_default(field) -> Any:
    """The default as the command line writes it (`...`: required)."""
    if field.is_required():
        return ...
    if cli_meta(field).get("listed") and field.default is not None:
        return ",".join(str(x) for x in field.default)
    return field.default


def cli_parameter(model: type[Config], name: str, field) -> inspect.Parameter:
    """The typer parameter a config field becomes (its flag, default, help and command-line type)."""
    annotation = field.annotation
    if cli_meta(field).get("listed"):
        annotation = str if field.default is not None else str | None
    long = flag(model, name)
    decls = [f"{long}/--no-{long[2:]}"] if annotation is bool else [long]
    option = typer.Option(cli_default(field), *decls, help=field.description)
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=option)


def build(model: type[Config], values: dict[str, Any]) -> Config:
    """A validated model; the first problem becomes a UserError naming its flag."""
    try:
        return model(**values)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = flag(model, str(error["loc"][0])) if error["loc"] else model.__name__
        message = error["msg"].removeprefix("Value error, ")
        raise UserError(f"{where}: {message} (got {error['input']!r})") from None


def given_options() -> set[str] | None:
    """The options of the running command that the user set, on the command line or in a `--config` file (by
    parameter name, a config field's name); None outside a command. For fallbacks such as `defend train
    --preset` that must fill only what the user left out, even where the user wrote the default value."""
    ctx = get_current_context(silent=True)
    if ctx is None:
        return None
    return {name for name in ctx.params if ctx.get_parameter_source(name) not in (None, ParameterSource.DEFAULT)}


def config_options(command: Callable) -> Callable:
    """Expand every config-model parameter of `command` into one option per field (see the module doc)."""
    hints = get_type_hints(command)
    models: dict[str, type[Config]] = {}
    params: list[inspect.Parameter] = []
    for p in inspect.signature(command).parameters.values():
        hint = hints.get(p.name, p.annotation)
        if isinstance(hint, type) and issubclass(hint, Config):
            models[p.name] = hint
            params += [cli_parameter(hint, name, field) for name, field in cli_fields(hint).items()]
        else:
            params.append(p.replace(annotation=hint, kind=inspect.Parameter.KEYWORD_ONLY))
    params.sort(key=lambda p: getattr(p.default, "default", None) is not ...)  # required options first in --help
    names = [p.name for p in params]
    clashes = sorted({n for n in names if names.count(n) > 1})
    if clashes:
        raise TypeError(f"{command.__name__}: options defined twice: {', '.join(clashes)}")

    def run(**kwargs: Any) -> Any:
        for arg, model in models.items():
            kwargs[arg] = build(model, {name: kwargs.pop(name) for name in cli_fields(model)})
        return command(**kwargs)

    run.__name__, run.__qualname__, run.__doc__ = command.__name__, command.__qualname__, command.__doc__
    run.__module__ = command.__module__
    run.config_models = tuple(models.values())  # type: ignore[attr-defined]  # for tests and tools
    run.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]  # what typer reads
    run.__annotations__ = {p.name: p.annotation for p in params}
    return run
