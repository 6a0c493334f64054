"""State stores: what the sync engine remembers between runs (see :mod:`.base`)."""

from __future__ import annotations

from connector.state.base import (
    Outcome,
    RecordEntry,
    RecordIndex,
    SourceLock,
    StateStore,
    StoreCallBudget,
)

__all__ = [
    "Outcome",
    "RecordEntry",
    "RecordIndex",
    "SourceLock",
    "StateStore",
    "StoreCallBudget",
]
