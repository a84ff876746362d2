"""The local generation engine: continuous batching over transformers weights, and the ChatModel on top."""

from dilemmakit.engine.batching import BatchingEngine
from dilemmakit.engine.decoder import Decoder, EngineStats, Row, RowState
from dilemmakit.engine.local import LocalHFModel

__all__ = ["BatchingEngine", "Decoder", "EngineStats", "LocalHFModel", "Row", "RowState"]
