"""Building the engine: the one place the CLI and the Functions app put it together."""

from __future__ import annotations

from connector.clock import Clock
from connector.config import SourcesConfig
from connector.state.store import StateStore
from connector.sync.approval_hint import ApprovalHint
from connector.sync.context import SyncContext, SyncOptions
from connector.sync.engine import Engine
from connector.sync.readers import RecordReader, read_mapped_records
from connector.sync.references import DEFAULT_MAX_REFERENCE_RESENDS
from connector.sync.run_store import RunStore
from connector.sync.targets import DEFAULT_WINDOW, TargetFactory

__all__ = ["build_engine"]


def build_engine(
    config: SourcesConfig,
    store: StateStore,
    targets: TargetFactory,
    clock: Clock,
    *,
    records: RecordReader | None = None,
    owner: str | None = None,
    window: int = DEFAULT_WINDOW,
    isolation_calls: int | None = None,
    max_reference_resends: int = DEFAULT_MAX_REFERENCE_RESENDS,
    command_flags: str = "",
    approval_hint: ApprovalHint | None = None,
    state_name: str | None = None,
) -> Engine:
    """An engine over ``store`` sending through ``targets`` (one per source: Graph or the
    emulator), with all time from ``clock``.

    ``records`` reads and maps an extract (default: the source's mapping,
    :func:`~connector.sync.readers.read_mapped_records`); ``owner`` names this process in
    the source locks it takes; ``window``, ``isolation_calls``, ``max_reference_resends``
    ``command_flags`` and ``approval_hint``: see :class:`~connector.sync.context.SyncOptions`;
    ``state_name``: how errors name the state store (default: the store's repr).
    """
    options = SyncOptions(
        window, isolation_calls, max_reference_resends, command_flags, approval_hint
    )
    ctx = SyncContext(
        config=config,
        runs=RunStore(store, clock),
        targets=targets,
        records=records or read_mapped_records,
        clock=clock,
        options=options,
    )
    return Engine(ctx, owner=owner, state_name=state_name or repr(store))
