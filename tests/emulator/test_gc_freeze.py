"""``gc.freeze()`` is process-wide, so the emulator only calls it when told to."""

from __future__ import annotations

import gc

from connector.clock import FakeClock
from connector.emulator import EmulatorConfig, run_emulator

from .helpers import record, upload


def test_default_config_leaves_the_host_process_gc_alone() -> None:
    before = gc.get_freeze_count()
    with run_emulator(EmulatorConfig(), clock=FakeClock()) as emu:
        upload(emu, record("1"), record("2"))
        assert len(emu.users()) == 2
        assert gc.get_freeze_count() == before


def test_gc_freeze_opt_in_freezes_after_a_cycle_and_unfreezes_on_stop() -> None:
    assert gc.get_freeze_count() == 0
    with run_emulator(EmulatorConfig(gc_freeze=True), clock=FakeClock()) as emu:
        upload(emu, record("1"))
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0
