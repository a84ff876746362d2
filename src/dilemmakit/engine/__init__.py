"""The local generation engine: continuous batching over transformers weights, and the ChatModel on top.

batching.py      BatchingEngine: requests from many conversations, one worker thread over the model
decoder.py       Decoder: the continuous-batching decode loop over preallocated key/value slots
prefix_cache.py  PrefixCache: finished replies' keys/values, reused by a conversation's next turn
sampling.py      each row's next token under its own sampling settings
local.py         LocalHFModel: the ChatModel over local weights
"""

from dilemmakit.engine.batching import BatchingEngine
from dilemmakit.engine.decoder import Decoder, EngineStats, Row, RowState, context_length
from dilemmakit.engine.local import LocalHFModel
from dilemmakit.engine.prefix_cache import PREFIX_CACHE_MB, PrefixCache
from dilemmakit.engine.sampling import sample_tokens

__all__ = [
    "PREFIX_CACHE_MB",
    "BatchingEngine",
    "Decoder",
    "EngineStats",
    "LocalHFModel",
    "PrefixCache",
    "Row",
    "RowState",
    "context_length",
    "sample_tokens",
]
