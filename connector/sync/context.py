"""What every stage of the engine shares: the config, the runs, the targets, the clock."""

from __future__ import annotations

from dataclasses import dataclass

from connector.clock import Clock
from connector.config import SourcesConfig
from connector.sync.readers import RecordReader
from connector.sync.references import DEFAULT_MAX_REFERENCE_RESENDS
from connector.sync.run_store import RunStore
from connector.sync.targets import DEFAULT_ISOLATION_CALLS, DEFAULT_WINDOW, TargetFactory

__all__ = ["SyncContext", "SyncOptions"]


@dataclass(frozen=True, slots=True)
class SyncOptions:
    """How runs are sent. ``window``: bulk requests of one run in flight at once (1 sends
    one at a time); ``isolation_calls``: extra calls one run may spend finding the records
    a 400 is about; ``max_reference_resends``: automatic re-sends of a record skipped for
    an unresolved manager, once the manager exists (0 turns them off); ``command_flags``:
    the CLI flags that name this config and state, appended to commands reports print."""

    window: int = DEFAULT_WINDOW
    isolation_calls: int = DEFAULT_ISOLATION_CALLS
    max_reference_resends: int = DEFAULT_MAX_REFERENCE_RESENDS
    command_flags: str = ""

    def __post_init__(self) -> None:
        if self.window < 1:
            raise ValueError("window must be at least 1")
        if self.max_reference_resends < 0:
            raise ValueError("max_reference_resends must be 0 (off) or more")


@dataclass(slots=True)
class SyncContext:
    """Shared by the stages of one engine (``targets`` and ``records`` may be swapped)."""

    config: SourcesConfig
    runs: RunStore
    targets: TargetFactory
    records: RecordReader
    clock: Clock
    options: SyncOptions
