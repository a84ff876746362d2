"""From a model spec to a ChatModel: weights, the spec's defense, the local engine, and the shared model pool.

load_model(spec)     the ChatModel a spec names, built by the backend registered for its kind
load_weights(spec)   `Loaded(model, tokenizer, defense)`: a local spec's weights with its defense installed
target_identity(spec)  what names a target in stored runs: its spec's identity and its defenses' weight sums
ModelPool            one loaded instance per spec; `pool_scope` owns one for the length of a run
"""

from dilemmakit.loading.backends import BACKENDS, load_model, local_chat_model, register_backend
from dilemmakit.loading.identity import defense_refs, defense_weights, target_identity, weights_identity
from dilemmakit.loading.pool import ModelPool, pool_scope
from dilemmakit.loading.weights import (
    Loaded,
    load_hf_weights,
    load_weights,
    resolve_device,
    resolve_dtype,
    weights_source,
)

__all__ = [
    "BACKENDS",
    "Loaded",
    "ModelPool",
    "defense_refs",
    "defense_weights",
    "load_hf_weights",
    "load_model",
    "load_weights",
    "local_chat_model",
    "pool_scope",
    "register_backend",
    "resolve_device",
    "resolve_dtype",
    "target_identity",
    "weights_identity",
    "weights_source",
]
