"""The engine of a command: the store its options name, and the flags printed commands carry."""

from __future__ import annotations

from pathlib import Path

import pytest

from connector.cli.options import GraphOptions, StateLocation
from connector.cli.wiring import command_engine, dry_run_engine, open_state_store, store_exists
from connector.clock import SystemClock
from connector.errors import StateError
from tests.cli.helpers import write_config


def test_a_local_store_exists_once_its_directory_does(tmp_path: Path) -> None:
    location = StateLocation(directory=tmp_path / "state")
    assert not store_exists(location)
    (tmp_path / "state").mkdir()
    assert store_exists(location)
    assert store_exists(StateLocation(account_url="https://a.blob.core.windows.net"))


def test_only_sync_may_start_a_new_local_store(tmp_path: Path) -> None:
    missing = StateLocation(directory=tmp_path / "nope")
    with pytest.raises(StateError, match="only `connector sync` starts a new one"):
        open_state_store(missing, SystemClock())
    assert not (tmp_path / "nope").exists()


def test_printed_commands_carry_the_non_secret_target_options(tmp_path: Path) -> None:
    config = write_config(tmp_path / "sources.yaml")
    state = StateLocation(directory=tmp_path / "state")
    endpoint = "http://127.0.0.1:9/bulkUpload"
    graph = GraphOptions(auth="certificate", endpoint=endpoint, allow_loopback=True)
    engine = command_engine(config, state, graph, create=True)
    assert engine.command_flags == (
        f"--config {config} --state {tmp_path / 'state'} --auth certificate"
        f" --endpoint {endpoint} --allow-loopback"
    )
    assert engine.state_name == str(tmp_path / "state")
    with_token = GraphOptions(auth="certificate", token="secret-token")
    engine = command_engine(config, state, with_token)
    assert engine.command_flags == (
        f'--config {config} --state {tmp_path / "state"} --token "$CONNECTOR_TOKEN"'
    )
    assert "secret-token" not in engine.command_flags


def test_a_dry_run_on_a_new_store_plans_elsewhere_and_names_the_store_asked_for(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path / "sources.yaml")
    asked = StateLocation(directory=tmp_path / "state")
    engine = dry_run_engine(config, asked)
    assert engine.command_flags == f"--config {config} --state {tmp_path / 'state'}"
    assert engine.state_name != str(tmp_path / "state")
    assert not (tmp_path / "state").exists()
