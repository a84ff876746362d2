"""Our behaviors as Inspect samples, and back: the sample's input is the behavior's request."""

from __future__ import annotations

from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.solver import TaskState

from dilemmakit.behaviors import Behavior, load_behaviors


def behavior_dataset(
    behaviors: str = "jbb", *, limit: int | None = None, category: str | None = None, seed: int | None = None
) -> MemoryDataset:
    """A built-in set or a behaviors file, picked as `dilemma attack` picks it (`limit`: stratified by category)."""
    picked = load_behaviors(behaviors, limit=limit, category=category, seed=seed)
    samples = [Sample(input=b.prompt, id=b.id, metadata={"category": b.category, "source": b.source}) for b in picked]
    return MemoryDataset(samples, name=behaviors)


def behavior_of(state: TaskState) -> Behavior:
    return Behavior(
        id=str(state.sample_id),
        prompt=state.input_text,
        category=state.metadata.get("category", ""),
        source=state.metadata.get("source", ""),
    )
