"""The core modules' public names are curated: ``__all__`` lists what callers may use."""

from __future__ import annotations

import importlib
import inspect

import pytest

EXPECTED = {
    "connector.extract": {
        "DEFAULT_MAX_FIELD_BYTES", "DEFAULT_MAX_REJECTED_SHARE", "MAX_REJECTED_IN_ERROR",
        "SNIFFED_DELIMITERS", "ExtractProfile", "ExtractReader", "ExtractStats", "RejectReason",
        "RejectedRow", "Row", "encoding_problem", "read_extract",
    },
    "connector.mapping": {
        "CORE_ATTRIBUTES", "ENTERPRISE_ATTRIBUTES", "MULTI_VALUED_ATTRIBUTES", "Mapping",
        "check_mapping", "load_mapping",
    },
    "connector.transforms": {
        "TRANSFORM_NAMES", "Transform", "make_transform", "strip_diacritics",
    },
    "connector.records": {"MappedRecord", "RecordStream", "iter_records"},
    "connector.validate": {"DEFAULT_SAMPLE_ROWS", "Problem", "ValidationReport", "validate"},
    "connector.sample": {
        "CSV2SCIM_COLUMNS", "DEFAULT_AS_OF", "DEFAULT_COLUMNS", "LAYOUTS", "Faults", "Layout",
        "churn_extract", "generate_extract",
    },
    "connector.scim": {
        "BULK_REQUEST_SCHEMA", "CONTENT_TYPE", "CORE_USER_SCHEMA", "DEFAULT_MAX_REQUEST_BYTES",
        "ENTERPRISE_USER_SCHEMA", "MAX_OPERATIONS_PER_REQUEST", "BulkOperation", "BulkPayload",
        "SerializedOperation", "build_bulk_requests", "make_bulk_id",
        "max_operation_bytes", "serialize_operation", "split_payload",
    },
    "connector.cli.core": {"register"},
    "connector.cli.preview": {
        "PreviewSummary",
        "preview",
        "quick_preview",
        "run_preview",
        "write_payload",
    },
}  # fmt: skip


@pytest.mark.parametrize("module_name", sorted(EXPECTED))
def test_all_is_curated_and_resolvable(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert set(module.__all__) == EXPECTED[module_name]
    assert len(module.__all__) == len(set(module.__all__))
    for name in module.__all__:
        assert hasattr(module, name), name


@pytest.mark.parametrize("module_name", sorted(EXPECTED))
def test_public_functions_and_classes_are_documented(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert module.__doc__
    for name in module.__all__:
        obj = getattr(module, name)
        if inspect.isfunction(obj) or inspect.isclass(obj):
            assert obj.__doc__, f"{module_name}.{name} has no docstring"


def test_signatures_other_parts_rely_on() -> None:
    from connector.extract import read_extract
    from connector.mapping import load_mapping
    from connector.records import iter_records
    from connector.sample import churn_extract, generate_extract
    from connector.scim import build_bulk_requests

    assert list(inspect.signature(load_mapping).parameters) == ["path_or_text"]
    assert list(inspect.signature(read_extract).parameters)[:2] == ["source", "profile"]
    assert list(inspect.signature(iter_records).parameters)[:2] == ["source", "mapping"]
    assert list(inspect.signature(generate_extract).parameters)[:4] == [
        "out",
        "rows",
        "seed",
        "layout",
    ]
    assert list(inspect.signature(churn_extract).parameters)[:4] == [
        "previous",
        "out",
        "churn",
        "seed",
    ]
    assert "max_bytes" in inspect.signature(build_bulk_requests).parameters


def test_refusal_error_lives_in_the_error_tree_and_stays_importable_from_extract() -> None:
    import connector.errors as errors
    import connector.extract as extract

    assert extract.RejectedShareExceededError is errors.RejectedShareExceededError
    assert issubclass(errors.RejectedShareExceededError, errors.TooManyRejectedRowsError)
    assert "RejectedShareExceededError" in errors.__all__
    assert "RejectedShareExceededError" in (errors.__doc__ or "")
    assert extract.MAX_REJECTED_IN_ERROR == errors.RejectedShareExceededError.MAX_LISTED
    rows = [extract.RejectedRow(i, f"E{i}", "field_count", "2 fields") for i in range(1500)]
    stats = extract.ExtractStats(10, {"field_count": 1500})
    exc = errors.RejectedShareExceededError("refused", path="f.csv", rejected=rows, stats=stats)
    stats.rejected_by_reason["field_count"] = 0  # the error keeps its own copy
    assert len(exc.rejected) == extract.MAX_REJECTED_IN_ERROR
    assert exc.stats.rows_rejected == 1500
    assert exc.rejected_omitted == 500
