"""Typed configurations: one pydantic model per workflow is the single source of its options.

A field's default and `help` are what the command line shows (`dilemmakit.cli.options` derives the flags),
what `--config FILE` is checked against, and what the Python API uses:

    class OverRefusalConfig(Config):
        target: str = option(help="Model spec")
        max_tokens: int = option(64, "Reply length")
        limit: int | None = option(None, "Use the first N prompts", flag="limit")
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticUndefined


class Config(BaseModel):
    """A workflow's settings: unknown fields are errors, values are checked on construction."""

    model_config = ConfigDict(extra="forbid")

    @classmethod
    def extra_cli_fields(cls) -> dict[str, Any]:
        """Command-line options the model takes beyond its own fields, by name (field infos built with
        `option()`): a campaign takes every registered attack's options. The model's validator sorts them."""
        return {}

    @model_validator(mode="before")
    @classmethod
    def _split_listed(cls, data: Any) -> Any:
        """Fields marked `listed` also accept comma-separated text (how the command line writes them)."""
        if isinstance(data, dict):
            for name, field in cls.model_fields.items():
                value = data.get(name)
                if isinstance(value, str) and cli_meta(field).get("listed"):
                    data = {**data, name: [x.strip() for x in value.split(",") if x.strip()] or None}
        return data


_IDENTITY: dict[Any, str | None] = {True: None, False: "never", "if_set": "if_set"}  # as `cli_meta` stores it


def option(
    default: Any = PydanticUndefined,
    help: str = "",
    *,
    flag: str | None = None,
    cli: bool = True,
    listed: bool = False,
    identity: bool | Literal["if_set"] = True,
    **constraints: Any,
) -> Any:
    """A config field that is also a command-line option.

    flag: the option's name when it is not the field's name with dashes (`--max-tokens` for
    `target_max_tokens`); cli=False: not on the command line (Python API and config files of other
    tools only); listed: a list given as comma-separated text on the command line. identity: whether the
    field is part of what a stored run is (`identity_of`): False for what does not change a result
    (a limit, a concurrency), "if_set" for a field added after runs were stored (left out at its
    default, so those runs keep their ids). Constraints (`ge=1`, ...) are checked with the rest.
    """
    extra = {"flag": flag, "no_cli": not cli, "listed": listed, "identity": _IDENTITY[identity]}
    return Field(
        default, description=help or None, json_schema_extra={k: v for k, v in extra.items() if v}, **constraints
    )


def identity_of(config: BaseModel) -> dict[str, Any]:
    """The fields that make up a stored run's identity, as each field declares it (`option(identity=...)`)."""
    data = config.model_dump()
    for name, field in type(config).model_fields.items():
        declared = cli_meta(field).get("identity")
        if declared == "never" or (declared == "if_set" and data.get(name) == field.default):
            data.pop(name, None)
    return data


def cli_meta(field) -> dict[str, Any]:
    """The command-line settings `option()` stored on a field."""
    extra = field.json_schema_extra
    return extra if isinstance(extra, dict) else {}
