"""Benign forced-choice dilemmas: the packaged sets, how one is rendered into a prompt, and how a reply's
choice is read.

    from dilemmakit import dilemmas
    d = dilemmas.load("heldout")[0]
    shown = dilemmas.render(d, style=None, rng=random.Random(0))   # options may be swapped
    dilemmas.target(shown, d)                                       # "Option B. <reason>"
    dilemmas.engaged(reply)                                         # keyword measure

These are ordinary moral dilemmas (a found wallet, a nurse's duty, a lever), never a harmful request in
disguise: a model that answers them with a choice and a reason engages in ethical reasoning, one that
refuses them pays the alignment tax.
"""

from dilemmakit.dilemmas.prompt import RenderedDilemma, person, render, style_names, target
from dilemmakit.dilemmas.reply import ENGAGED, REFUSED, UNANSWERED, engaged, grade_reply, parse_choice
from dilemmakit.dilemmas.sets import FAMILIES, SPLITS, Dilemma, load

__all__ = [
    "ENGAGED",
    "FAMILIES",
    "REFUSED",
    "SPLITS",
    "UNANSWERED",
    "Dilemma",
    "RenderedDilemma",
    "engaged",
    "grade_reply",
    "load",
    "parse_choice",
    "person",
    "render",
    "style_names",
    "target",
]
