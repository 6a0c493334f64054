"""connector.pipeline keeps re-exporting the names callers import from it."""

from __future__ import annotations

import importlib

import pytest

import connector.pipeline as pipeline

HOMES = {
    "connector.runs": [
        "MAX_REJECTED_IN_JOURNAL",
        "OPEN_STATES",
        "PassResult",
        "RunState",
        "RunSummary",
        "WaitingReason",
        "make_run_id",
        "waiting_reason_of",
    ],
    "connector.targets": [
        "DEFAULT_WINDOW",
        "BatchReceipt",
        "GraphTarget",
        "ProvisioningTarget",
        "TargetFactory",
        "graph_targets",
        "source_cloud",
    ],
    "connector.readers": ["ExtractRecords", "RecordReader", "read_mapped_records"],
    "connector.plans": ["NEVER_ACCEPTED"],
}


@pytest.mark.parametrize(("module", "name"), [(m, n) for m, ns in HOMES.items() for n in ns])
def test_name_is_the_same_object_from_pipeline_and_its_home(module: str, name: str) -> None:
    home = importlib.import_module(module)
    assert name in pipeline.__all__
    assert getattr(pipeline, name) is getattr(home, name)


def test_every_exported_name_resolves() -> None:
    missing = [n for n in pipeline.__all__ if not hasattr(pipeline, n)]
    assert missing == []
    assert pipeline.Engine.__module__ == "connector.pipeline"
