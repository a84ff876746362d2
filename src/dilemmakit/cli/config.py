"""`--config FILE.toml|yaml`: defaults for every command's options, read once at the root.

    # dilemma.toml                       (YAML works the same way: a mapping per command)
    run_dir = "runs/gpt"                 # top level: every command that has the option
    [attack]
    target = "openai:gpt-4o@https://api.openai.com/v1"
    max-rounds = 6                       # option names with dashes or underscores
    [defend.eval]                        # a subcommand of a group: a nested table

The file becomes click's `default_map`, so flags on the command line still win. Unknown sections,
unknown options and values of the wrong type fail before anything runs, in one line that names the
valid choices.
"""

from __future__ import annotations

import inspect
import tomllib
from dataclasses import dataclass
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin, get_type_hints

import typer
from pydantic import TypeAdapter, ValidationError
from typer.models import OptionInfo

from dilemmakit.cli.app import app
from dilemmakit.cli.options import cli_fields, cli_parameter
from dilemmakit.config import cli_meta
from dilemmakit.errors import UserError
from dilemmakit.userdata import ENCODING

OPTION = "--config"


def hoist_config(argv: list[str]) -> list[str]:
    """Let `--config` appear after the command name too (`dilemma attack --config x.toml`): the root
    option has to be parsed before the command, so move it to the front."""
    front, rest, i = [], [], 0
    while i < len(argv):
        arg = argv[i]
        if arg == OPTION and i + 1 < len(argv):
            front += argv[i : i + 2]
            i += 2
            continue
        if arg.startswith(OPTION + "="):
            front.append(arg)
        else:
            rest.append(arg)
        i += 1
    return front + rest


def read_config_file(path: Path) -> dict[str, Any]:
    """Parse a TOML or YAML file into a mapping; any problem is a UserError naming the file."""
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".yaml", ".yml"):
        raise UserError(f"config file {path}: use a .toml, .yaml or .yml file")
    try:
        text = path.read_text(encoding=ENCODING)
    except FileNotFoundError:
        raise UserError(f"config file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read config file {path}: {getattr(exc, 'strerror', None) or exc}") from None
    if suffix == ".toml":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise UserError(f"config file {path} is not valid TOML: {exc}") from None
        except RecursionError:
            raise UserError(f"config file {path} is not valid TOML: nested too deeply") from None
    else:
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            detail = " ".join(str(exc).split())
            raise UserError(f"config file {path} is not valid YAML: {detail}") from None
        except RecursionError:
            raise UserError(f"config file {path} is not valid YAML: nested too deeply") from None
        if data is None:
            data = {}
    if not isinstance(data, dict):
        raise UserError(f"config file {path}: the top level must be a mapping of command sections")
    return data


def _key(name: Any) -> str:
    return str(name).strip().lstrip("-").replace("-", "_")


def _commands(group) -> dict[str, Any]:
    return {name: cmd for name, cmd in group.commands.items() if not getattr(cmd, "hidden", False)}


def _is_group(cmd) -> bool:
    return isinstance(getattr(cmd, "commands", None), dict)


@dataclass
class _Option:
    name: str  # the command's parameter, the key of click's default_map
    flag: str  # `max-tokens`
    annotation: Any  # as the command line reads it
    field: Any = None  # the config model's field it comes from: its constraints (`ge=1`, ...) apply too


def _options(cmd) -> dict[str, _Option]:
    """A command's options by every name a user may write: the flag (`max-tokens`) or the field
    (`target_max_tokens`). Those of its config models (`dilemmakit.cli.options`) come from the models' fields,
    the command's own (`--run-dir`, `--json`) from its signature."""
    names: dict[str, _Option] = {}

    def add(option: _Option) -> None:
        names[option.name] = names[_key(option.flag)] = option

    for model in getattr(cmd.callback, "config_models", ()):
        for name, field in cli_fields(model).items():
            parameter = cli_parameter(model, name, field)
            long = parameter.default.param_decls[0].split("/")[0]
            add(_Option(name, long[2:], parameter.annotation, field))
    hints = get_type_hints(cmd.callback)
    for p in inspect.signature(cmd.callback).parameters.values():
        if not isinstance(p.default, OptionInfo) or p.name in names:
            continue
        longs = [d.split("/")[0] for d in p.default.param_decls or () if d.startswith("--")]
        add(_Option(p.name, longs[0][2:] if longs else p.name.replace("_", "-"), hints.get(p.name, str)))
    return names


def _expected(annotation: Any, value: Any) -> str | None:
    """Why a config value does not fit an option's type, in the words the command line would use."""
    args = [a for a in get_args(annotation) if a is not type(None)]
    base = args[0] if get_origin(annotation) in (Union, UnionType) and len(args) == 1 else annotation
    if isinstance(value, dict) or (isinstance(value, list) and get_origin(base) not in (list, tuple)):
        return f"expected a single value, got a {type(value).__name__}"
    if base is bool and not isinstance(value, bool):
        return f"expected true or false, got {value!r}"
    if base in (int, float) and isinstance(value, bool):
        return f"expected a number, got {value!r}"
    if base is str and isinstance(value, (int, float)):
        return None  # the command line reads `--seed 3` as text for a text option too
    try:
        TypeAdapter(annotation).validate_python(value)
    except ValidationError as exc:
        kind = exc.errors()[0]["type"]
        words = {"int": "an integer", "float": "a number", "string": "text"}.get(kind.split("_")[0])
        return f"expected {words}, got {value!r}" if words else f"{exc.errors()[0]['msg']}, got {value!r}"
    return None


def _checked(option: _Option, value: Any, where: str) -> Any:
    problem = _expected(option.annotation, value) or _outside(option, value)
    if problem:
        raise UserError(f"config {where}: {problem}")
    return value


def _outside(option: _Option, value: Any) -> str | None:
    """Why a value of the right type breaks its config field's constraints (`n-streams = 0`)."""
    if option.field is None or not option.field.metadata or cli_meta(option.field).get("listed"):
        return None
    try:
        constrained: Any = Annotated[option.field.annotation, *option.field.metadata]
        TypeAdapter(constrained).validate_python(value)
    except ValidationError as exc:
        return f"{exc.errors()[0]['msg']}, got {value!r}"
    return None


def _section(cmd, data: dict[str, Any], shared: dict[str, Any], where: str) -> dict[str, Any]:
    if _is_group(cmd):
        subs = _commands(cmd)
        out: dict[str, Any] = {}
        for name, value in data.items():
            if name not in subs:
                raise UserError(
                    f"config {where}: unknown section [{where}.{name}]; "
                    f"{where} has: {', '.join(sorted(subs)) or 'no subcommands'}"
                )
            if not isinstance(value, dict):
                raise UserError(f"config [{where}.{name}] must be a table of options")
            out[name] = _section(subs[name], value, shared, f"{where}.{name}")
        for name, sub in subs.items():  # shared top-level options reach subcommands without a section too
            if name not in out:
                nested = _section(sub, {}, shared, f"{where}.{name}")
                if nested:
                    out[name] = nested
        return out
    options = _options(cmd)
    out = {options[name].name: value for name, value in shared.items() if name in options}
    for raw_name, value in data.items():
        option = options.get(_key(raw_name))
        if option is None:
            flags = sorted({o.flag for o in options.values()})
            raise UserError(f"config [{where}]: unknown option {raw_name!r}; valid: {', '.join(flags) or 'none'}")
        out[option.name] = _checked(option, value, f"[{where}] {raw_name}")
    return out


def build_default_map(root, data: dict[str, Any]) -> dict[str, Any]:
    """Validate a parsed config file against the app's commands and turn it into a default_map."""
    commands = _commands(root)
    sections = {k: v for k, v in data.items() if isinstance(v, dict)}
    for name in sections:
        if name not in commands:
            raise UserError(f"config: unknown section [{name}]; commands are: {', '.join(sorted(commands))}")

    def leaves(cmd):
        if _is_group(cmd):
            for sub in _commands(cmd).values():
                yield from leaves(sub)
        else:
            yield cmd

    everywhere: dict[str, _Option] = {}
    for cmd in leaves(root):
        for name, option in _options(cmd).items():
            everywhere.setdefault(name, option)
    shared = {}
    for raw_name, value in data.items():
        if raw_name in sections:
            continue
        name = _key(raw_name)
        if name not in everywhere:
            raise UserError(
                f"config: top-level option {raw_name!r} is not an option of any command "
                f"(sections are: {', '.join(sorted(commands))})"
            )
        shared[name] = _checked(everywhere[name], value, f"top-level {raw_name}")
    default_map = {}
    for name, cmd in commands.items():
        section = _section(cmd, sections.get(name, {}), shared, name)
        if section:
            default_map[name] = section
    return default_map


@app.callback()
def _root(
    ctx: typer.Context,
    config: Path | None = typer.Option(
        None,
        OPTION,
        help="TOML or YAML file of option defaults, one table per command name; flags override it",
    ),
) -> None:
    """Attack, explain and defend language models on ethical-dilemma jailbreaks."""
    if config is not None:
        ctx.default_map = build_default_map(ctx.command, read_config_file(config))
