"""The package's top-level API is curated, resolvable and cheap to import."""

from __future__ import annotations

import subprocess
import sys

import pytest

import connector

EXPECTED = {
    "BulkOperation", "BulkPayload", "ConfigError", "ConnectorError", "Engine", "ExtractError",
    "ExtractProfile", "GraphClient", "GraphError", "LogQuery", "LocalStateStore", "Mapping",
    "MappedRecord", "MappingError", "ProvisioningEndpoint", "RecordStream", "RejectedRow", "Row",
    "RunError", "RunSummary", "SourcesConfig", "StateError", "TooManyRejectedRowsError",
    "build_bulk_requests", "churn_extract", "generate_extract", "iter_records", "load_mapping",
    "load_sources", "make_bulk_id", "read_extract",
}  # fmt: skip


def test_all_is_exactly_the_curated_list() -> None:
    assert set(connector.__all__) == EXPECTED
    assert connector.__all__ == sorted(connector.__all__)
    assert set(connector._EXPORTS) == EXPECTED


def test_every_exported_name_resolves_to_its_module_object() -> None:
    for name in connector.__all__:
        obj = getattr(connector, name)
        module = __import__(connector._EXPORTS[name], fromlist=[name])
        assert obj is getattr(module, name)
        assert name in dir(connector)


def test_unknown_attribute_raises() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        connector.no_such_name  # noqa: B018


def test_import_is_lazy() -> None:
    code = (
        "import sys, connector; print(sorted(m for m in sys.modules if m.startswith('connector.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_embedding_example_runs() -> None:
    from connector import build_bulk_requests, iter_records, load_mapping

    mapping = load_mapping("samples/mappings/default.yaml")
    records = iter_records("samples/hr-extract.csv", mapping)
    payloads = list(build_bulk_requests(records.operations()))
    sent = [eid for p in payloads for eid in p.external_ids]
    assert len(sent) == records.stats.rows_accepted > 0
    assert all(len(p) <= 50 for p in payloads)


def test_no_export_is_shadowed_by_a_submodule() -> None:
    # ``import connector.x`` sets the package attribute ``x`` to the submodule, so an
    # exported name equal to a submodule's name would change meaning after that import.
    import pkgutil

    submodules = {m.name for m in pkgutil.iter_modules(connector.__path__)}
    assert not submodules & set(connector.__all__)
