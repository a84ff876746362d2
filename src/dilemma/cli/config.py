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

import tomllib
from pathlib import Path
from typing import Any, Optional

import typer

from dilemma.cli.app import app
from dilemma.errors import UserError

try:  # typer >= 0.20 vendors its own click
    from typer import _click as click
except ImportError:  # pragma: no cover
    import click  # type: ignore

OPTION = "--config"


def hoist_config(argv: list[str]) -> list[str]:
    """Let `--config` appear after the command name too (`dilemma attack --config x.toml`): the root
    option has to be parsed before the command, so move it to the front."""
    front, rest, i = [], [], 0
    while i < len(argv):
        arg = argv[i]
        if arg == OPTION and i + 1 < len(argv):
            front += argv[i:i + 2]
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
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"config file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read config file {path}: {getattr(exc, 'strerror', None) or exc}") from None
    if suffix == ".toml":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise UserError(f"config file {path} is not valid TOML: {exc}") from None
    else:
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            detail = " ".join(str(exc).split())
            raise UserError(f"config file {path} is not valid YAML: {detail}") from None
        if data is None:
            data = {}
    if not isinstance(data, dict):
        raise UserError(f"config file {path}: the top level must be a mapping of command sections")
    return data


def _key(name: Any) -> str:
    return str(name).strip().lstrip("-").replace("-", "_")


def _commands(group) -> dict[str, Any]:
    return {name: cmd for name, cmd in group.commands.items() if not getattr(cmd, "hidden", False)}


def _options(cmd) -> dict[str, Any]:
    """Options by every name a user may write: the flag (`out`, `run-dir`) or the parameter (`out_file`)."""
    names: dict[str, Any] = {}
    for p in cmd.params:
        if not p.name or not p.expose_value:
            continue
        names[p.name] = p
        for flag in getattr(p, "opts", []):
            if flag.startswith("--"):
                names.setdefault(_key(flag), p)
    return names


def _flag_names(cmd) -> list[str]:
    out = []
    for p in cmd.params:
        if p.name and p.expose_value:
            longs = [f for f in getattr(p, "opts", []) if f.startswith("--")]
            out.append(longs[0][2:] if longs else p.name.replace("_", "-"))
    return sorted(out)


def _is_group(cmd) -> bool:
    return isinstance(getattr(cmd, "commands", None), dict)


def _annotation(param) -> Any:
    descriptor = getattr(param, "type_descriptor", None)
    return getattr(descriptor, "annotation", None)


def _cast(cmd, param, value: Any, where: str) -> Any:
    """Check a config value the way the command line would convert it; return it unchanged."""
    many = getattr(param, "multiple", False) or getattr(param, "nargs", 1) != 1
    if isinstance(value, dict) or (isinstance(value, list) and not many):
        raise UserError(f"config {where}: expected a single value, got a {type(value).__name__}")
    annotation = _annotation(param)
    if annotation is bool and not isinstance(value, bool):
        raise UserError(f"config {where}: expected true or false, got {value!r}")
    if annotation in (int, float) and isinstance(value, bool):
        raise UserError(f"config {where}: expected a number, got {value!r}")
    if annotation is int and (isinstance(value, float) or (isinstance(value, str) and not value.strip().lstrip("+-").isdigit())):
        raise UserError(f"config {where}: expected an integer, got {value!r}")
    if annotation is float and isinstance(value, str):
        try:
            float(value)
        except ValueError:
            raise UserError(f"config {where}: expected a number, got {value!r}") from None
    try:
        ctx = click.Context(cmd)
        if hasattr(param, "get_runtime_param"):
            param.get_runtime_param().coerce(value, param=param, ctx=ctx)
        else:  # plain click
            param.type_cast_value(ctx, value)
    except click.exceptions.BadParameter as exc:
        raise UserError(f"config {where}: {exc.format_message()}") from None
    except click.exceptions.ClickException as exc:
        raise UserError(f"config {where}: {exc.format_message()}") from None
    except (TypeError, ValueError) as exc:
        raise UserError(f"config {where}: invalid value {value!r} ({exc})") from None
    return value


def _section(cmd, data: dict[str, Any], shared: dict[str, Any], where: str) -> dict[str, Any]:
    if _is_group(cmd):
        subs = _commands(cmd)
        out: dict[str, Any] = {}
        for name, value in data.items():
            if name not in subs:
                raise UserError(f"config {where}: unknown section [{where}.{name}]; "
                                f"{where} has: {', '.join(sorted(subs)) or 'no subcommands'}")
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
        name = _key(raw_name)
        if name not in options:
            raise UserError(f"config [{where}]: unknown option {raw_name!r}; "
                            f"valid: {', '.join(_flag_names(cmd)) or 'none'}")
        out[options[name].name] = _cast(cmd, options[name], value, f"[{where}] {raw_name}")
    return out


def build_default_map(root, data: dict[str, Any]) -> dict[str, Any]:
    """Validate a parsed config file against the app's commands and turn it into a default_map."""
    commands = _commands(root)
    sections = {k: v for k, v in data.items() if isinstance(v, dict)}
    shared_raw = {k: v for k, v in data.items() if not isinstance(v, dict)}
    for name in sections:
        if name not in commands:
            raise UserError(f"config: unknown section [{name}]; commands are: {', '.join(sorted(commands))}")

    def all_options(cmd):
        if _is_group(cmd):
            for sub in _commands(cmd).values():
                yield from all_options(sub)
        else:
            for name, param in _options(cmd).items():
                yield cmd, name, param

    everywhere = {}
    for cmd, name, param in all_options(root):
        everywhere.setdefault(name, (cmd, param))
    shared = {}
    for raw_name, value in shared_raw.items():
        name = _key(raw_name)
        if name not in everywhere:
            raise UserError(f"config: top-level option {raw_name!r} is not an option of any command "
                            f"(sections are: {', '.join(sorted(commands))})")
        cmd, param = everywhere[name]
        shared[name] = _cast(cmd, param, value, f"top-level {raw_name}")
    default_map = {}
    for name, cmd in commands.items():
        section = _section(cmd, sections.get(name, {}), shared, name)
        if section:
            default_map[name] = section
    return default_map


@app.callback()
def _root(
    ctx: typer.Context,
    config: Optional[Path] = typer.Option(
        None, OPTION, help="TOML or YAML file of option defaults, one table per command name; flags override it",
    ),
) -> None:
    """Attack, explain and defend language models on ethical-dilemma jailbreaks."""
    if config is not None:
        ctx.default_map = build_default_map(ctx.command, read_config_file(config))
