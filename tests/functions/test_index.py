"""The function index builds, and each binding is what the infrastructure expects."""

from __future__ import annotations

import functools
import inspect
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import function_app
from connector.functions.dropzone import CONTAINERS, INCOMING
from connector.functions.settings import DEFAULT_RECONCILE_SCHEDULE, TRIGGER_CONNECTION

ROOT = Path(__file__).resolve().parents[2]


@functools.cache
def _functions() -> dict[str, dict[str, Any]]:
    # get_functions() may be called once per app: it registers the names it indexes.
    return {
        f.get_function_name(): json.loads(f.get_function_json())
        for f in function_app.app.get_functions()
    }


def _trigger(bindings: list[dict[str, Any]]) -> dict[str, Any]:
    triggers = [b for b in bindings if b["type"].endswith("Trigger")]
    assert len(triggers) == 1
    return triggers[0]


def test_index_has_exactly_the_shared_function_names() -> None:
    assert set(_functions()) == {"ingest_extract", "reconcile", "health"}


def test_the_blob_trigger_binds_an_sdk_type_so_the_host_sends_the_name_not_the_bytes() -> None:
    """The worker asks the host for deferred (model binding) data only for a parameter whose
    type the SDK-binding registry supports; an ``InputStream`` would carry the whole file."""
    import typing

    from azurefunctions.extensions.base import get_binding_registry
    from azurefunctions.extensions.bindings.blob import BlobClient

    user = function_app.ingest_extract._function.get_user_function()  # type: ignore[attr-defined]
    hint = typing.get_type_hints(user)["blob"]  # how the worker reads the annotation
    assert hint is BlobClient
    assert get_binding_registry().check_supported_type(hint)


def test_blob_trigger_is_event_grid_on_incoming_with_the_named_connection() -> None:
    trigger = _trigger(_functions()["ingest_extract"]["bindings"])
    assert trigger["type"] == "blobTrigger"
    assert trigger["source"] == "EventGrid"  # Flex Consumption supports only this
    assert trigger["connection"] == TRIGGER_CONNECTION == "HrDropStorage"
    assert trigger["path"] == f"{INCOMING}/{{name}}"
    assert trigger["path"].split("/")[0] in CONTAINERS


def test_timer_reads_its_schedule_from_the_app_setting() -> None:
    trigger = _trigger(_functions()["reconcile"]["bindings"])
    assert trigger["type"] == "timerTrigger"
    assert trigger["schedule"] == "%RECONCILE_SCHEDULE%"
    assert trigger["runOnStartup"] is False
    assert DEFAULT_RECONCILE_SCHEDULE == "0 */15 * * * *"


def test_health_is_a_get_with_a_function_key() -> None:
    bindings = _functions()["health"]["bindings"]
    trigger = _trigger(bindings)
    assert trigger["type"] == "httpTrigger"
    assert trigger["route"] == "health"
    assert trigger["methods"] == ["GET"]
    assert trigger["authLevel"] == "FUNCTION"


def test_host_json_choices() -> None:
    host = json.loads((ROOT / "host.json").read_text())
    assert host["version"] == "2.0"
    assert host["extensionBundle"] == {
        "id": "Microsoft.Azure.Functions.ExtensionBundle",
        "version": "[4.*, 5.0.0)",
    }
    h, m, s = (int(x) for x in host["functionTimeout"].split(":"))
    assert 0 < h * 3600 + m * 60 + s <= 3600  # bounded, not -1
    blobs = host["extensions"]["blobs"]
    assert 1 <= blobs["maxDegreeOfParallelism"] <= 4
    assert 1 <= blobs["poisonBlobThreshold"] <= 5
    sampling = host["logging"]["applicationInsights"]["samplingSettings"]
    excluded = set(sampling["excludedTypes"].split(";"))
    assert {"Request", "Exception"} <= excluded  # invocations and errors are never sampled
    assert "telemetryMode" not in host  # classic mode: host forwards worker logs


def test_local_settings_sample_is_local_only_and_complete() -> None:
    values = json.loads((ROOT / "local.settings.sample.json").read_text())["Values"]
    assert values["FUNCTIONS_WORKER_RUNTIME"] == "python"
    assert values["HrDropStorage"] == "UseDevelopmentStorage=true"
    assert values["AzureWebJobsStorage"] == "UseDevelopmentStorage=true"
    from connector.config import parse_sources

    config = parse_sources(values["CONNECTOR_SOURCES"], path=ROOT / "CONNECTOR_SOURCES")
    for src in config.sources:
        assert src.mapping_path is not None
        assert src.mapping_path.is_file(), src.mapping_path


@pytest.mark.parametrize("module", ["function_app"])
def test_importing_the_app_stays_light(module: str) -> None:
    """Cold start: the host imports function_app to index it; nothing heavy may load.

    The Blob SDK does load: the trigger's ``BlobClient`` type (an SDK-type binding) must be
    resolvable when the worker indexes the function, and the extension imports it.
    """
    code = (
        f"import sys, {module}; heavy = sorted(m for m in sys.modules if m.split('.')[0] in"
        " ('pydantic', 'httpx', 'yaml', 'opentelemetry', 'sqlalchemy') or"
        " m.startswith(('azure.monitor', 'connector'))); print(heavy);"
        " sys.exit(1 if heavy else 0)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_function_app_is_only_the_adapter() -> None:
    """Decorators and one-line outcomes; the hosted connector lives in connector/functions/."""
    import ast

    source = (ROOT / "function_app.py").read_text(encoding="utf-8")
    tree = ast.parse(source)
    assert not [n for n in tree.body if isinstance(n, ast.ClassDef)]
    functions = {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
    assert functions == {"ingest_extract", "reconcile", "health"}
    assert len(source.splitlines()) <= 120


def test_the_hosted_connector_uses_no_private_engine_names() -> None:
    import ast

    private = [
        f"{path.name}: {alias.name}"
        for path in sorted((ROOT / "connector" / "functions").glob("*.py"))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("connector")
        for alias in node.names
        if alias.name.startswith("_")
    ]
    assert private == []


def test_drop_zone_containers_are_the_ones_the_infra_creates() -> None:
    sys.path.insert(0, str(ROOT / "tests" / "infra"))
    try:
        import infra_contract
    finally:
        sys.path.remove(str(ROOT / "tests" / "infra"))
    assert set(CONTAINERS) == set(infra_contract.DATA_CONTAINERS)
    assert "approvals" in CONTAINERS


def test_functions_are_synchronous_so_the_host_runs_them_on_its_thread_pool() -> None:
    for fn in (function_app.ingest_extract, function_app.reconcile, function_app.health):
        user = fn._function.get_user_function()  # type: ignore[attr-defined]
        assert not inspect.iscoroutinefunction(user), user.__name__
