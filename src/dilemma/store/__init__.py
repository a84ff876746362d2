"""The run database: every turn and verdict committed as it happens; resume replays what is stored."""

from dilemma.store.db import ConversationRow, RunStore, TurnRecord, VerdictRecord, open_store

__all__ = ["ConversationRow", "RunStore", "TurnRecord", "VerdictRecord", "open_store"]
