"""Models: one ChatModel protocol, three kinds of spec (embedded, hf:, openai:)."""

from dilemma.models.base import ChatModel, GenParams, Message, Reply
from dilemma.models.spec import ModelSpec, load_model, parse_spec

__all__ = ["ChatModel", "GenParams", "Message", "Reply", "ModelSpec", "load_model", "parse_spec"]
