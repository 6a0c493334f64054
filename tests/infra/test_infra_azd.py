"""azure.yaml, .funcignore and the function names shared with function_app.py."""

from __future__ import annotations

import fnmatch
import json
import os
import subprocess
import sys

import bicep_model as bm
import yaml
from infra_contract import (
    HEALTH_FUNCTION,
    HEALTH_ROUTE,
    INFRA,
    INGEST_FUNCTION,
    INGEST_PATH,
    INGEST_SOURCE,
    RECONCILE_FUNCTION,
    RECONCILE_SCHEDULE_BINDING,
    ROOT,
    TRIGGER_CONNECTION,
)

MAIN = INFRA / "main.bicep"


def _azure_yaml() -> dict[str, object]:
    data: dict[str, object] = yaml.safe_load((ROOT / "azure.yaml").read_text())
    return data


def test_azd_service_is_the_python_function_app_at_the_repository_root() -> None:
    services = _azure_yaml()["services"]
    assert isinstance(services, dict)
    assert services == {"connector": {"project": ".", "language": "python", "host": "function"}}
    body, _ = bm.module(MAIN, "functionApp")
    assert body["params"]["azdServiceName"] in services
    infra = _azure_yaml()["infra"]
    assert infra == {"provider": "bicep", "path": "infra", "module": "main"}


def test_postdeploy_hook_runs_the_event_grid_script_on_every_platform() -> None:
    hooks = _azure_yaml()["hooks"]
    assert isinstance(hooks, dict)
    assert set(hooks) == {"postdeploy"}
    post = hooks["postdeploy"]
    assert post["posix"]["shell"] == "sh"
    assert post["windows"]["shell"] == "pwsh"
    for platform in ("posix", "windows"):
        assert post[platform]["continueOnError"] is False
        script = ROOT / post[platform]["run"]
        assert script.is_file(), script
        assert script.stem == "create-eventgrid-subscription"


def _ignored(path: str, patterns: list[str]) -> bool:
    parts = path.split("/")
    return any(
        fnmatch.fnmatch(path, p) or any(fnmatch.fnmatch(part, p) for part in parts)
        for p in patterns
    )


def test_funcignore_ships_the_app_and_nothing_else() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".funcignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for shipped in (
        "function_app.py",
        "host.json",
        "requirements.txt",
        "connector/functions/settings.py",
        "samples/mappings/default.yaml",
    ):
        assert not _ignored(shipped, patterns), shipped
    for left_out in (
        ".venv/bin/python",
        "tests/infra/test_infra_azd.py",
        "infra/main.bicep",
        "scripts/grant-graph-permissions.sh",
        "docs/deploy.md",
        "local.settings.json",
        ".azure/dev/.env",
        "connector/__pycache__/x.pyc",
        "benchmarks/bench_x.py",
        "pyproject.toml",
    ):
        assert _ignored(left_out, patterns), left_out


_LIST_FUNCTIONS = """
import json, function_app
out = []
for fn in function_app.app.get_functions():
    out.append({"name": fn.get_function_name(), "json": json.loads(fn.get_function_json())})
print(json.dumps(out))
"""


def _registered_functions() -> dict[str, list[dict[str, object]]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("APPLICATIONINSIGHTS_")}
    proc = subprocess.run(
        [sys.executable, "-c", _LIST_FUNCTIONS],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, f"importing function_app failed: {proc.stderr[-2000:]}"
    listed = json.loads(proc.stdout.strip().splitlines()[-1])
    return {f["name"]: f["json"]["bindings"] for f in listed}


def test_function_names_and_triggers_agree_with_the_infrastructure() -> None:
    functions = _registered_functions()
    assert functions, (
        "function_app.py registered no functions: `app.get_functions()` is empty, so the "
        "trigger names, paths and connection cannot be checked against the Bicep. Make sure "
        "function_app.py still defines `app = func.FunctionApp(...)` and its decorated functions."
    )
    missing = {INGEST_FUNCTION, RECONCILE_FUNCTION, HEALTH_FUNCTION} - set(functions)
    assert not missing, (
        f"function_app.py does not register {sorted(missing)} (registered: {sorted(functions)}); "
        "the deployment (Event Grid webhook functionName, alerts, docs) relies on these names"
    )
    assert bm.variable(MAIN, "ingestFunctionName") == INGEST_FUNCTION
    (blob,) = [b for b in functions[INGEST_FUNCTION] if b["type"] == "blobTrigger"]
    assert blob["path"] == INGEST_PATH
    assert blob["connection"] == TRIGGER_CONNECTION
    assert blob["source"] == INGEST_SOURCE
    assert blob["path"].split("/", 1)[0] == bm.variable(MAIN, "incomingContainerName")
    (timer,) = [b for b in functions[RECONCILE_FUNCTION] if b["type"] == "timerTrigger"]
    assert timer["schedule"] == RECONCILE_SCHEDULE_BINDING
    (http,) = [b for b in functions[HEALTH_FUNCTION] if b["type"] == "httpTrigger"]
    assert http["route"] == HEALTH_ROUTE
    assert [m.upper() for m in http["methods"]] == ["GET"]
    assert str(http["authLevel"]).upper() == "FUNCTION"
