"""What every stage of the engine shares: the config, the runs, the targets, the clock."""

from __future__ import annotations

from dataclasses import dataclass

from connector.clock import Clock
from connector.config import SourcesConfig
from connector.sync.approval_hint import ApprovalHint
from connector.sync.readers import RecordReader
from connector.sync.references import DEFAULT_MAX_REFERENCE_RESENDS
from connector.sync.run_store import RunStore
from connector.sync.targets import DEFAULT_WINDOW, TargetFactory

__all__ = ["SyncContext", "SyncOptions"]


@dataclass(frozen=True, slots=True)
class SyncOptions:
    """How runs are sent. ``window``: bulk requests of one run in flight at once (1 sends
    one at a time); ``isolation_calls``: extra calls one run may spend finding the records
    a 400 is about (None: the sources config's ``isolation_calls``);
    ``max_reference_resends``: automatic re-sends of a record skipped for an unresolved
    manager, once the manager exists (0 turns them off); ``command_flags``: the CLI flags
    that name this config and state, appended to commands reports print;
    ``approval_hint``: how a held run is released where it lives (None: the CLI commands
    with ``command_flags``)."""

    window: int = DEFAULT_WINDOW
    isolation_calls: int | None = None
    max_reference_resends: int = DEFAULT_MAX_REFERENCE_RESENDS
    command_flags: str = ""
    approval_hint: ApprovalHint | None = None

    def __post_init__(self) -> None:
        if self.window < 1:
            raise ValueError("window must be at least 1")
        if self.isolation_calls is not None and self.isolation_calls < 0:
            raise ValueError("isolation_calls must be 0 (no isolation) or more")
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

    @property
    def isolation_calls(self) -> int:
        """Extra calls one run may spend isolating 400s: the option, else the config's."""
        chosen = self.options.isolation_calls
        return self.config.isolation_calls if chosen is None else chosen

    @property
    def approval_hint(self) -> ApprovalHint:
        """How reports tell an operator to release or drop a held run."""
        return self.options.approval_hint or ApprovalHint.cli(self.options.command_flags)
