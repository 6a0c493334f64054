"""Local emulator of the Entra API-driven inbound provisioning API.

``create_app`` builds the Starlette app; ``run_emulator`` runs it on a loopback port
in a background thread. See docs/emulator.md for behaviours and assumptions.
"""

from __future__ import annotations

from connector.emulator.app import create_app
from connector.emulator.bulk_request import validate_bulk_request
from connector.emulator.clock import EmulatorClock
from connector.emulator.config import (
    BUCKET_FULL_MESSAGE,
    EmulatorConfig,
    JobConfig,
    load_config,
    on_premises_job,
)
from connector.emulator.server import RunningEmulator, run_emulator
from connector.emulator.tenant import EmulatorState

__all__ = [
    "BUCKET_FULL_MESSAGE",
    "EmulatorClock",
    "EmulatorConfig",
    "EmulatorState",
    "JobConfig",
    "RunningEmulator",
    "create_app",
    "load_config",
    "on_premises_job",
    "run_emulator",
    "validate_bulk_request",
]
