"""The engine's names live in one place each: the old flat modules are gone."""

from __future__ import annotations

import importlib
import importlib.util
import inspect

import pytest

HOMES = {
    "connector.sync.journal": [
        "MAX_REJECTED_IN_JOURNAL",
        "OPEN_STATES",
        "RunState",
        "make_run_id",
    ],
    "connector.sync.journal_doc": ["journal_from_doc", "journal_to_doc"],
    "connector.sync.waiting": ["WaitingReason", "waiting_reason_of"],
    "connector.sync.summary": ["PassResult", "ProgressCallback", "RunSummary", "loggable"],
    "connector.sync.targets": [
        "DEFAULT_WINDOW",
        "BatchReceipt",
        "GraphTarget",
        "ProvisioningTarget",
        "TargetFactory",
        "graph_targets",
        "source_cloud",
    ],
    "connector.sync.readers": ["ExtractRecords", "RecordReader", "read_mapped_records"],
    "connector.sync.plans": ["NEVER_ACCEPTED"],
    "connector.sync.engine": ["Engine"],
}

OLD_MODULES = [
    "connector.pipeline",
    "connector.runs",
    "connector.plans",
    "connector.targets",
    "connector.readers",
    "connector.delta",
    "connector.references",
    "connector.runtime",
    "connector.dropzone",
    "connector.settings",
    "connector.telemetry",
]


@pytest.mark.parametrize(("module", "name"), [(m, n) for m, ns in HOMES.items() for n in ns])
def test_name_resolves_from_its_home(module: str, name: str) -> None:
    home = importlib.import_module(module)
    assert name in home.__all__
    obj = getattr(home, name)
    if inspect.isclass(obj) or inspect.isfunction(obj):
        assert obj.__module__ == module


@pytest.mark.parametrize("module", OLD_MODULES)
def test_old_flat_module_is_gone(module: str) -> None:
    assert importlib.util.find_spec(module) is None


def test_engine_is_defined_in_the_sync_package() -> None:
    from connector.sync.engine import Engine

    assert Engine.__module__ == "connector.sync.engine"
