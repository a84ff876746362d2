"""Stage 1's result: the dilemma TRIAL opens with, and the offline way to build it.

The offline opening (abstract clue, template scenario, no model) is what `--attacker template`
sends first: it never quotes the request. With `embed_request` the request itself is the act in a
fixed frame, as the paper's D_TRIAL-H; the probe prompt sets and the ERR data builder use that.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from dilemmakit.attacks.trial.clue import Clue, abstract_clue, embedded_clue
from dilemmakit.attacks.trial.prompts import Framework, PromptBook, prompt_book
from dilemmakit.attacks.trial.scenario import embedded_scenario, template_scenario
from dilemmakit.behaviors import Behavior


@dataclass(frozen=True)
class Opening:
    clue: Clue
    scenario: str
    scenario_meta: dict  # its source and, for a template scenario, the character and catastrophe drawn
    message: str  # what the target is sent: the scenario and the forced choice under the framework

    @classmethod
    def around(cls, clue: Clue, scenario: str, scenario_meta: dict, framework: Framework, book: PromptBook) -> Opening:
        message = book.init.substitute(
            framework_name=framework.name, scenario=scenario, tiebreaker=framework.tiebreaker
        )
        return cls(clue, scenario, scenario_meta, message)

    @property
    def character(self) -> str:
        return self.scenario_meta.get("character", "the character")


def offline_opening(
    behavior: Behavior,
    *,
    framework: str = "utilitarian",
    rng: random.Random,
    book: PromptBook | None = None,
    embed_request: bool = False,
) -> Opening:
    """The opening built without a helper model; `rng` draws the character and the scenario template."""
    book = book or prompt_book()
    fw = book.framework(framework)
    if embed_request:
        clue = embedded_clue(behavior)
        scenario, meta = embedded_scenario(book, clue, fw, rng)
    else:
        clue = abstract_clue(behavior, book)
        scenario, meta = template_scenario(book, clue, fw, rng)
    return Opening.around(clue, scenario, meta, fw, book)
