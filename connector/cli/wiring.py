"""The state store and sync engine a command works on, built in one place.

Every run command (and the demo) gets its engine from :func:`command_engine`: the sources
config, the state store its options name, a Graph target per source and the flags that
printed commands carry. Only ``connector sync`` may start a new, empty store.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from connector.cli.options import (
    DEFAULT_STATE,
    REPORTS_CONTAINER,
    STATE_CONTAINER,
    GraphOptions,
    StateLocation,
    command_flags,
)
from connector.errors import StateError

if TYPE_CHECKING:
    from connector.clock import Clock
    from connector.state.store import StateStore
    from connector.sync.engine import Engine

__all__ = ["command_engine", "dry_run_engine", "open_state_store", "store_exists"]


def open_state_store(location: StateLocation, clock: Clock, *, create: bool = False) -> StateStore:
    """The StateStore of ``location``.

    Only ``sync`` may start a new, empty store (``create``): for every other command a
    store that does not exist is a mistyped or missing ``--state``, and an error rather
    than an empty store that reads "no runs yet".
    """
    if location.is_blob:
        return _blob_state_store(location, clock, create=create)
    from connector.state.local import LocalStateStore

    directory = location.directory or DEFAULT_STATE
    if not create and not directory.is_dir():
        raise StateError(
            f"no state store at {directory} (--state): check the path; only `connector sync`"
            " starts a new one"
        )
    return LocalStateStore(directory, clock=clock)


def _blob_state_store(location: StateLocation, clock: Clock, *, create: bool) -> StateStore:
    """The app's state on Blob Storage; unless ``create``, its state container must exist."""
    from azure.core.exceptions import AzureError
    from azure.storage.blob import BlobServiceClient

    from connector.state.blob import BlobStateStore

    if location.connection_string:
        service = BlobServiceClient.from_connection_string(location.connection_string)
    else:
        from azure.identity import DefaultAzureCredential

        service = BlobServiceClient(str(location.account_url), credential=DefaultAzureCredential())
    if not create:
        try:
            found = service.get_container_client(STATE_CONTAINER).exists()
        except AzureError as exc:
            raise StateError(f"cannot reach the state store {location.describe()}: {exc}") from exc
        if not found:
            raise StateError(
                f"no state store at {location.describe()} (container {STATE_CONTAINER!r}"
                " not found): check the account URL; only `connector sync` starts a new one"
            )
    return BlobStateStore(
        service,
        state_container=STATE_CONTAINER,
        reports_container=REPORTS_CONTAINER,
        clock=clock,
    )


def store_exists(location: StateLocation) -> bool:
    """Whether ``location`` already holds a store (local: the directory; Blob: assumed,
    the container is checked by the commands that need it)."""
    if location.directory is not None or not location.is_blob:
        return (location.directory or DEFAULT_STATE).is_dir()
    return True


def command_engine(
    config_path: Path,
    state: StateLocation,
    graph: GraphOptions | None = None,
    *,
    create: bool = False,
    flags: str | None = None,
) -> Engine:
    """The engine of one command: config, state store, Graph targets and pasteable flags.

    ``flags`` replaces the flags derived from the options (the demo and a dry run against
    a store that does not exist yet name another store than the one they work on).
    """
    from connector.clock import SystemClock
    from connector.config import load_sources
    from connector.sync.targets import graph_targets
    from connector.sync.wiring import build_engine

    config = load_sources(config_path)
    clock = SystemClock()
    store = open_state_store(state, clock, create=create)
    chosen = graph or GraphOptions()
    endpoint = chosen.endpoint
    targets = graph_targets(
        config,
        store,
        chosen.provider,
        clock,
        allow_loopback=chosen.allow_loopback,
        endpoint_for=(lambda src: endpoint) if endpoint else None,
    )
    if flags is None:
        flags = command_flags(
            config_path,
            state,
            auth=chosen.auth if not chosen.token else "default",
            endpoint=endpoint,
            allow_loopback=chosen.allow_loopback,
        )
        if chosen.token:  # the pasted command reads it from the environment, never echoed
            flags += ' --token "$CONNECTOR_TOKEN"'
    return build_engine(
        config, store, targets, clock, command_flags=flags, state_name=state.describe()
    )


def dry_run_engine(config: Path, location: StateLocation) -> Engine:
    """A dry run against a store that does not exist yet: plan against an empty state in a
    throw-away directory (a dry run creates nothing where --state points)."""
    empty = Path(tempfile.mkdtemp(prefix="connector-dry-run-"))
    return command_engine(
        config,
        StateLocation(directory=empty),
        create=True,
        flags=command_flags(config, location),
    )
