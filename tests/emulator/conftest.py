"""One shared loopback emulator (reset before each test) on a FakeClock, plus a factory
for tests that need their own configuration."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest

from connector.clock import FakeClock
from connector.emulator import EmulatorConfig, RunningEmulator, run_emulator


@pytest.fixture(scope="session")
def _shared_emulator() -> Iterator[RunningEmulator]:
    with run_emulator(EmulatorConfig(seed=1), clock=FakeClock()) as emu:
        yield emu


@pytest.fixture
def emu(_shared_emulator: RunningEmulator) -> RunningEmulator:
    """The shared emulator with an empty tenant, default limits, clock offset 0."""
    _shared_emulator.reset()
    _shared_emulator.clock.set_offset(0.0)
    return _shared_emulator


@pytest.fixture
def make_emulator() -> Iterator[Callable[..., RunningEmulator]]:
    """Start a dedicated emulator: ``make_emulator(log_delay_seconds=5, ...)``."""
    with ExitStack() as stack:

        def start(**fields: Any) -> RunningEmulator:
            clock = fields.pop("clock", None) or FakeClock()
            config = EmulatorConfig(**fields)
            return stack.enter_context(run_emulator(config, clock=clock))

        yield start
