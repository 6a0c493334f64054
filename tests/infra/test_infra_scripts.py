"""The post-deploy Event Grid script and the Graph grant script, run against a fake `az`.

The POSIX scripts run for real (sh / bash) with `az` replaced by fake_az.py, so the tests see
the exact requests they would send. The PowerShell twins cannot run here (no pwsh on the
build machine); they get a structural comparison with the same contract instead.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import bicep_model as bm
from infra_contract import (
    DEADLETTER_CONTAINER,
    EVENT_TYPE,
    GRAPH_APP_ID,
    GRAPH_APP_ROLES,
    INCOMING_CONTAINER,
    INFRA,
    INGEST_FUNCTION,
    SCRIPTS,
    SUBJECT_PREFIX,
)

HERE = Path(__file__).resolve().parent
EVENTGRID_SH = SCRIPTS / "create-eventgrid-subscription.sh"
EVENTGRID_PS1 = SCRIPTS / "create-eventgrid-subscription.ps1"
GRANT_SH = SCRIPTS / "grant-graph-permissions.sh"
GRANT_PS1 = SCRIPTS / "grant-graph-permissions.ps1"
FAKE_KEY = "fAkEbLoBsExTeNsIoNkEy0123456789=="
STORAGE_ID = "/subscriptions/s/resourceGroups/rg-x/providers/Microsoft.Storage/storageAccounts/stx"
TOPIC_ID = "/subscriptions/s/resourceGroups/rg-x/providers/Microsoft.EventGrid/systemTopics/evgt-x"
MI_PRINCIPAL = "22222222-3333-4444-5555-666666666666"
GRAPH_SP = "99999999-8888-7777-6666-555555555555"

# The azd environment values the hook reads: main.bicep outputs.
HOOK_ENV = {
    "AZURE_RESOURCE_GROUP": "rg-x",
    "AZURE_FUNCTION_APP_NAME": "func-x",
    "AZURE_FUNCTION_APP_HOSTNAME": "func-x.azurewebsites.net",
    "AZURE_STORAGE_ACCOUNT_ID": STORAGE_ID,
    "EVENTGRID_SYSTEM_TOPIC_ID": TOPIC_ID,
    "INGEST_FUNCTION_NAME": INGEST_FUNCTION,
    "INCOMING_CONTAINER_NAME": INCOMING_CONTAINER,
    "DEADLETTER_CONTAINER_NAME": DEADLETTER_CONTAINER,
    "GRAPH_PERMISSIONS_GRANTED": "true",
    "MANAGED_IDENTITY_PRINCIPAL_ID": MI_PRINCIPAL,
}
NO_WAIT = {"KEY_WAIT_SECONDS": "0", "POLL_SECONDS": "0", "CREATE_RETRY_SECONDS": "0"}


def _fake_az_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    az = bin_dir / "az"
    az.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{HERE / "fake_az.py"}" "$@"\n')
    az.chmod(0o755)
    return {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "TMPDIR": str(tmp_path),
        "FAKE_AZ_DIR": str(tmp_path / "az"),
        "FAKE_KEY": FAKE_KEY,
        "FAKE_GRAPH_SP_ID": GRAPH_SP,
        **extra,
    }


def _calls(tmp_path: Path) -> list[dict[str, Any]]:
    log = tmp_path / "az" / "calls.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def _run(
    script: Path, env: dict[str, str], *args: str, shell: str = "sh"
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [shell, str(script), *args], env=env, capture_output=True, text=True, timeout=60
    )


def test_eventgrid_script_subscribes_the_ingest_function_to_incoming(tmp_path: Path) -> None:
    env = _fake_az_env(tmp_path, **HOOK_ENV, **NO_WAIT, FAKE_KEY_AFTER="2")
    proc = _run(EVENTGRID_SH, env)
    assert proc.returncode == 0, proc.stderr
    calls = _calls(tmp_path)
    key_calls = [c for c in calls if c["argv"][:3] == ["functionapp", "keys", "list"]]
    assert len(key_calls) == 3  # waited for the host to create the key
    (put,) = [c for c in calls if c["argv"][:3] == ["rest", "--method", "put"]]
    url = put["argv"][put["argv"].index("--url") + 1]
    assert url == (
        f"https://management.azure.com{TOPIC_ID}/eventSubscriptions/incoming-blob-created"
        "?api-version=2022-06-15"
    )
    props = json.loads(put["body"])["properties"]
    destination = props["destination"]
    assert destination["endpointType"] == "WebHook"
    assert destination["properties"]["endpointUrl"] == (
        "https://func-x.azurewebsites.net/runtime/webhooks/blobs"
        f"?functionName=Host.Functions.{INGEST_FUNCTION}&code={FAKE_KEY}"
    )
    assert props["filter"]["includedEventTypes"] == [EVENT_TYPE]
    assert props["filter"]["subjectBeginsWith"] == SUBJECT_PREFIX
    assert props["retryPolicy"] == {"maxDeliveryAttempts": 30, "eventTimeToLiveInMinutes": 1440}
    dead_letter = props["deadLetterWithResourceIdentity"]
    assert dead_letter["identity"] == {"type": "SystemAssigned"}
    assert dead_letter["deadLetterDestination"] == {
        "endpointType": "StorageBlob",
        "properties": {"resourceId": STORAGE_ID, "blobContainerName": DEADLETTER_CONTAINER},
    }
    # The webhook key never reaches the console, and its temp file is gone.
    assert FAKE_KEY not in proc.stdout + proc.stderr
    assert not list(tmp_path.glob("tmp*"))


def test_eventgrid_script_names_the_missing_environment_value(tmp_path: Path) -> None:
    env = _fake_az_env(
        tmp_path, **{k: v for k, v in HOOK_ENV.items() if k != "EVENTGRID_SYSTEM_TOPIC_ID"}
    )
    proc = _run(EVENTGRID_SH, env)
    assert proc.returncode == 2
    assert "EVENTGRID_SYSTEM_TOPIC_ID" in proc.stderr
    assert _calls(tmp_path) == []


def test_eventgrid_script_fails_after_repeated_validation_failures(tmp_path: Path) -> None:
    env = _fake_az_env(tmp_path, **HOOK_ENV, **NO_WAIT, FAKE_STATE="Failed", CREATE_ATTEMPTS="2")
    proc = _run(EVENTGRID_SH, env)
    assert proc.returncode == 1
    assert "Troubleshooting" in proc.stderr
    puts = [c for c in _calls(tmp_path) if c["argv"][:3] == ["rest", "--method", "put"]]
    assert len(puts) == 2


def test_eventgrid_script_gives_up_when_no_key_appears(tmp_path: Path) -> None:
    env = _fake_az_env(tmp_path, **HOOK_ENV, **NO_WAIT, FAKE_KEY_AFTER="99", KEY_WAIT_ATTEMPTS="3")
    proc = _run(EVENTGRID_SH, env)
    assert proc.returncode == 1
    assert "blobs_extension" in proc.stderr
    assert not [c for c in _calls(tmp_path) if c["argv"][0] == "rest"]


def test_eventgrid_script_reminds_about_graph_grants_when_bicep_did_not_grant(
    tmp_path: Path,
) -> None:
    env = _fake_az_env(tmp_path, **{**HOOK_ENV, "GRAPH_PERMISSIONS_GRANTED": "false"}, **NO_WAIT)
    proc = _run(EVENTGRID_SH, env)
    assert proc.returncode == 0, proc.stderr
    assert "grant-graph-permissions" in proc.stdout
    assert MI_PRINCIPAL in proc.stdout


# Optional knobs of the hook scripts (not deployment outputs).
HOOK_KNOBS = {
    "EVENTGRID_SUBSCRIPTION_NAME",
    "KEY_WAIT_ATTEMPTS",
    "KEY_WAIT_SECONDS",
    "CREATE_ATTEMPTS",
    "CREATE_RETRY_SECONDS",
    "POLL_SECONDS",
}


def _sh_env_reads(text: str) -> set[str]:
    assigned = set(re.findall(r"^([A-Z][A-Z0-9_]+)=", text, re.M))
    loop = re.search(r"^for v in (.*?); do", text, re.S | re.M)
    assert loop, "required-values loop not found"
    listed = set(re.findall(r"[A-Z][A-Z0-9_]+", loop.group(1)))
    referenced = set(re.findall(r"\$\{?([A-Z][A-Z0-9_]+)", text))
    return (listed | referenced) - assigned


def _ps_env_reads(text: str) -> set[str]:
    listed = re.search(r"\$required = @\((.*?)\)", text, re.S)
    assert listed, "required-values list not found"
    return set(re.findall(r"\$env:([A-Z][A-Z0-9_]+)", text)) | set(
        re.findall(r"'([A-Z][A-Z0-9_]+)'", listed.group(1))
    )


def test_hooks_read_only_values_main_bicep_outputs() -> None:
    outputs = set(bm.parse(INFRA / "main.bicep")["outputs"])
    sh_reads = _sh_env_reads(EVENTGRID_SH.read_text()) - HOOK_KNOBS
    ps_reads = _ps_env_reads(EVENTGRID_PS1.read_text()) - HOOK_KNOBS
    assert sh_reads <= outputs, sh_reads - outputs
    assert ps_reads == sh_reads
    assert set(HOOK_ENV) == sh_reads


def test_grant_script_grants_only_the_missing_roles(tmp_path: Path) -> None:
    env = _fake_az_env(
        tmp_path,
        FAKE_EXISTING_ROLES="ProvisioningLog.Read.All",
        MANAGED_IDENTITY_PRINCIPAL_ID=MI_PRINCIPAL,
    )
    proc = _run(GRANT_SH, env, shell="bash")
    assert proc.returncode == 0, proc.stderr
    posts = [c for c in _calls(tmp_path) if c["argv"][:3] == ["rest", "--method", "post"]]
    granted = {json.loads(p["body"])["appRoleId"] for p in posts}
    for post in posts:
        body = json.loads(post["body"])
        assert body["principalId"] == MI_PRINCIPAL
        assert body["resourceId"] == GRAPH_SP
        url = post["argv"][post["argv"].index("--url") + 1]
        assert (
            url
            == f"https://graph.microsoft.com/v1.0/servicePrincipals/{MI_PRINCIPAL}/appRoleAssignments"
        )
    from fake_az import ROLE_IDS

    assert granted == {ROLE_IDS[r] for r in GRAPH_APP_ROLES if r != "ProvisioningLog.Read.All"}
    assert "already granted: ProvisioningLog.Read.All" in proc.stdout
    sp_lookup = [
        c for c in _calls(tmp_path) if any("servicePrincipals(appId=" in a for a in c["argv"])
    ]
    assert any(GRAPH_APP_ID in a for a in sp_lookup[0]["argv"])


def test_grant_script_rejects_a_principal_that_is_not_a_guid(tmp_path: Path) -> None:
    env = _fake_az_env(tmp_path)
    proc = _run(GRANT_SH, env, "not-a-guid", shell="bash")
    assert proc.returncode == 2
    assert _calls(tmp_path) == []


def _ps_list(text: str, variable: str) -> list[str]:
    match = re.search(rf"\${variable} = @\((.*?)\)", text, re.S)
    assert match, variable
    return re.findall(r"'([^']+)'", match.group(1))


def _sh_list(text: str, variable: str) -> list[str]:
    match = re.search(rf"^{variable}=\((.*?)\)", text, re.S | re.M)
    assert match, variable
    return re.findall(r'"([^"]+)"', match.group(1))


def test_graph_role_lists_agree_in_bicep_and_both_scripts() -> None:
    assert tuple(_sh_list(GRANT_SH.read_text(), "GRAPH_APP_ROLES")) == GRAPH_APP_ROLES
    assert tuple(_ps_list(GRANT_PS1.read_text(), "GraphAppRoles")) == GRAPH_APP_ROLES
    for script in (GRANT_SH, GRANT_PS1):
        assert GRAPH_APP_ID in script.read_text()


def test_powershell_hook_sends_the_same_subscription() -> None:
    text = EVENTGRID_PS1.read_text()
    assert f"$eventType = '{EVENT_TYPE}'" in text
    assert (
        '$subjectPrefix = "/blobServices/default/containers/$($env:INCOMING_CONTAINER_NAME)/"'
        in text
    )
    assert "functionName=Host.Functions.$($env:INGEST_FUNCTION_NAME)&code=$blobsKey" in text
    assert "$apiVersion = '2022-06-15'" in text
    assert "$maxDeliveryAttempts = 30" in text
    assert "$eventTtlMinutes = 1440" in text
    assert "identity = @{ type = 'SystemAssigned' }" in text
    assert "'incoming-blob-created'" in text
    for fragment in ("Write-Host $blobsKey", "Write-Host $body", "Write-Output $blobsKey"):
        assert fragment not in text


def test_scripts_are_executable_and_syntactically_valid() -> None:
    for script in (EVENTGRID_SH, GRANT_SH):
        assert os.access(script, os.X_OK), script.name
    assert EVENTGRID_SH.read_text().startswith("#!/bin/sh\n")
    assert subprocess.run(["sh", "-n", str(EVENTGRID_SH)], check=False).returncode == 0
    assert subprocess.run(["bash", "-n", str(GRANT_SH)], check=False).returncode == 0
    for script in (EVENTGRID_PS1, GRANT_PS1):
        text = script.read_text()
        assert "$ErrorActionPreference = 'Stop'" in text
        assert text.count("{") == text.count("}"), script.name
        assert text.count("(") == text.count(")"), script.name
