"""A dilemma as a user message: one of several instruction styles (data in `prompts/styles.json`), with the
two options in random order so a model cannot learn "always Option A"; and the answer a model is trained on."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from functools import cache
from string import Template
from typing import Any, Literal

from dilemmakit import resources
from dilemmakit.dilemmas.sets import Dilemma
from dilemmakit.errors import UserError


@dataclass(frozen=True)
class RenderedDilemma:
    prompt: str
    choice: Literal["A", "B"]  # the reference choice as this prompt labels the options
    style: str
    swapped: bool  # Option A of the prompt is the row's option_b


@cache
def _book() -> dict[str, Any]:
    return resources.read_json("dilemmakit.dilemmas", "prompts", "styles.json")


def style_names() -> list[str]:
    return list(_book()["styles"])


def render(d: Dilemma, *, style: str | None = None, rng: random.Random, swapped: bool | None = None) -> RenderedDilemma:
    """The dilemma in `style` (None: one drawn from `rng`), its options swapped half the time (or as
    `swapped` says: `rng` is drawn from either way, so the rest of a seeded sequence stays the same)."""
    book = _book()
    if style is None:
        style = rng.choice(style_names())
    elif style not in book["styles"]:
        raise UserError(f"unknown dilemma style {style!r}: use one of {', '.join(style_names())}")
    drawn = rng.random() < 0.5
    swapped = drawn if swapped is None else swapped
    lens = rng.choice(sorted(book["lenses"]))
    first, second = (d.option_b, d.option_a) if swapped else (d.option_a, d.option_b)
    prompt = Template(book["styles"][style]["template"]).substitute(
        scenario=d.scenario,
        person=person(d),
        option_a=_as_option(first),
        option_b=_as_option(second),
        lens=lens,
        lens_view=book["lenses"][lens],
    )
    choice: Literal["A", "B"] = d.choice if not swapped else ("B" if d.choice == "A" else "A")
    return RenderedDilemma(prompt, choice, style, swapped)


def target(rendered: RenderedDilemma, d: Dilemma) -> str:
    """The answer to train on: the reference choice as the prompt labels it, then the reason."""
    return f"Option {rendered.choice}. {d.reason}"


def _as_option(text: str) -> str:
    text = text.strip().rstrip(".")
    return text[:1].upper() + text[1:]


# Capitalised words that start sentences, name days and months, or name a role, never the person's name.
_NOT_NAME_WORDS = """a an the he she they his her hers their them it its i we you our your my this that these those there
    here if when while after before during since until unless although though because but and or so yet now
    then once later soon meanwhile however instead also even only still just one two three four five six seven
    eight nine ten twenty hundred every each both either neither some several many most no none nobody someone
    everyone anyone what who which where why how should would could can will may might must at in on by for
    from with without over under into onto near across along behind between among option monday tuesday
    wednesday thursday friday saturday sunday january february march april june july august september
    october november december last next yesterday today tonight tomorrow firefighter nurse doctor officer
    engineer teacher pilot chef coach manager mayor detective inspector lieutenant commander sergeant
    professor captain judge dr mr mrs ms mx prof fire police head chief senior junior young old elderly retired
    new local city town village school hospital night"""
_NOT_NAMES = frozenset(_NOT_NAME_WORDS.split())
_HONORIFIC = re.compile(r"(?:(?:Dr|Mr|Mrs|Ms|Mx|Prof)\.|Captain|Professor|Judge|Sergeant|Detective|Coach|Mayor) $")
_CAPITALISED = re.compile(r"\b(?:O')?[A-ZÀ-Ý][a-zß-ÿ]+(?:-[A-Za-zÀ-ÿ]+)*")
_NOT_A_NAME_END = re.compile(r"(?:ing|ed|ly)$")  # "Reversing out of a tight space, Oskar ..."


def person(d: Dilemma) -> str:
    """Who faces the choice: the first name in the scenario (up to three capitalised words, with an honorific
    such as "Dr." before it); "the person in this situation" when the scenario names nobody."""
    words = [
        m
        for m in _CAPITALISED.finditer(d.scenario)
        if m.group().lower() not in _NOT_NAMES and not _NOT_A_NAME_END.search(m.group())
    ]
    if not words:
        return "the person in this situation"
    first = words[0]
    end = first.end()
    for m in words[1:3]:
        if d.scenario[end : m.start()] != " ":
            break
        end = m.end()
    title = _HONORIFIC.search(d.scenario[: first.start()])
    return (title.group() if title else "") + d.scenario[first.start() : end]
