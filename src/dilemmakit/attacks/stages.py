"""The stages an attack stores its turns under, and how the report shows them.

An attack declares its stages with its registration (`attacks.registry`): each stage its label on a turn,
grouped into the steps the report's transcript filter offers (TRIAL's clue and scenario draft are both
"setup"). A stage nobody declares (a run stored by an older version) shows as its stored name.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Stage:
    """A stored stage name and its label on a turn (default: the name). A name ending in "_" stands for a
    family: `followup_` covers `followup_rule`, `followup_last`, ..., each labelled "<label> (<rest>)"."""

    name: str
    label: str = ""

    @property
    def is_family(self) -> bool:
        return self.name.endswith("_")

    def matches(self, stage: str) -> bool:
        return stage.startswith(self.name) if self.is_family else stage == self.name

    def label_of(self, stage: str) -> str:
        label = self.label or self.name
        return f"{label} ({stage[len(self.name) :]})" if self.is_family else label


@dataclass(frozen=True)
class StageGroup:
    """One entry of the report's stage filter: a step of an attack and the stages stored under it."""

    name: str
    label: str
    stages: tuple[Stage, ...]


def single(name: str, label: str = "") -> StageGroup:
    """A step of one stage, labelled alike in the filter and on its turns."""
    return StageGroup(name, label or name, (Stage(name, label),))


class StageTable:
    """Every declared group, in declaration order: a stored stage's group and label."""

    def __init__(self, groups: Iterable[StageGroup]):
        self.groups: dict[str, StageGroup] = {}
        for group in groups:
            if self.groups.setdefault(group.name, group) != group:
                raise TypeError(f"stage group {group.name!r} is declared twice, differently")
        self._order = {name: i for i, name in enumerate(self.groups)}

    def _find(self, stage: str) -> tuple[StageGroup, Stage] | None:
        for group in self.groups.values():
            for declared in group.stages:
                if declared.matches(stage):
                    return group, declared
        return None

    def group(self, stage: str) -> str:
        found = self._find(stage)
        return found[0].name if found else stage

    def label(self, stage: str) -> str:
        found = self._find(stage)
        return found[1].label_of(stage) if found else stage

    def group_labels(self) -> dict[str, str]:
        return {name: group.label for name, group in self.groups.items()}

    def sort_key(self, group: str) -> tuple[int, str]:
        """Declared groups in declaration order, then the undeclared ones by name."""
        return self._order.get(group, len(self._order)), group
