"""Prompt data files of the baseline attacks: attacks/prompts/<method>/<name>."""

from __future__ import annotations

import json
import re
from functools import lru_cache
from importlib import resources
from string import Template
from typing import Any, Iterator


def read_prompt(method: str, name: str) -> Template:
    return Template((resources.files("dilemma.attacks") / "prompts" / method / name).read_text(encoding="utf-8"))


@lru_cache(maxsize=None)
def templates(method: str) -> dict[str, Any]:
    """The offline (`--attacker template`) wording of a method: frames around the behavior's own text,
    never harmful instructions themselves."""
    return json.loads((resources.files("dilemma.attacks") / "prompts" / method / "templates.json").read_text(encoding="utf-8"))


def json_objects(text: str) -> Iterator[dict]:
    """The JSON objects embedded in free-form attacker output, outermost first."""
    for candidate in re.findall(r"\{.*\}", text, flags=re.S):
        try:
            data = json.loads(candidate)
        except json.JSONDecodeError:
            continue
        if isinstance(data, dict):
            yield data
