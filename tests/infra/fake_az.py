"""A stand-in for the Azure CLI (`az`) used to run the deployment scripts offline.

The tests put an executable `az` that runs this file first on PATH. It answers only the
calls the scripts make, records every call (and every request body) under FAKE_AZ_DIR,
and is steered by environment variables:

FAKE_AZ_DIR            where calls.jsonl and bodies are written (required)
FAKE_KEY               the blobs_extension key to hand out
FAKE_KEY_AFTER         number of `keys list` calls that return nothing first (default 0)
FAKE_STATE             provisioningState the GET of the subscription returns (Succeeded)
FAKE_GRAPH_SP_ID       object id of the Microsoft Graph service principal
FAKE_EXISTING_ROLES    comma-separated app role names already granted
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

# Deterministic fake app role ids for the role names the scripts ask about.
ROLE_IDS = {
    "SynchronizationData-User.Upload": "11111111-0000-0000-0000-000000000001",
    "ProvisioningLog.Read.All": "11111111-0000-0000-0000-000000000002",
    "AuditLog.Read.All": "11111111-0000-0000-0000-000000000003",
    "Synchronization.Read.All": "11111111-0000-0000-0000-000000000004",
    "Directory.Read.All": "11111111-0000-0000-0000-000000000005",
}


def _opt(args: list[str], name: str) -> str | None:
    return args[args.index(name) + 1] if name in args else None


def main(args: list[str]) -> int:
    state = Path(os.environ["FAKE_AZ_DIR"])
    state.mkdir(parents=True, exist_ok=True)
    record: dict[str, object] = {"argv": args}
    body = _opt(args, "--body")
    if body is not None:
        record["body"] = Path(body[1:]).read_text() if body.startswith("@") else body
    with (state / "calls.jsonl").open("a") as f:
        f.write(json.dumps(record) + "\n")

    if args[:3] == ["functionapp", "keys", "list"]:
        counter = state / "key-calls"
        n = int(counter.read_text()) if counter.exists() else 0
        counter.write_text(str(n + 1))
        if n >= int(os.environ.get("FAKE_KEY_AFTER", "0")):
            print(os.environ["FAKE_KEY"])
        return 0

    if args[0] != "rest":
        print(f"fake az: unexpected call {args}", file=sys.stderr)
        return 3
    method = _opt(args, "--method")
    url = _opt(args, "--url") or ""
    query = _opt(args, "--query") or ""
    if "/eventSubscriptions/" in url:
        if method == "get":
            print(os.environ.get("FAKE_STATE", "Succeeded"))
        return 0
    if "servicePrincipals(appId=" in url:
        print(os.environ["FAKE_GRAPH_SP_ID"])
        return 0
    if url.endswith("/appRoleAssignments") and method == "get":
        existing = [r for r in os.environ.get("FAKE_EXISTING_ROLES", "").split(",") if r]
        for role in existing:
            print(ROLE_IDS[role])
        return 0
    if "$select=appRoles" in url:
        match = re.search(r"value=='([^']+)'", query)
        print(ROLE_IDS.get(match.group(1), "") if match else "")
        return 0
    if url.endswith("/appRoleAssignments") and method == "post":
        return 0
    print(f"fake az: unexpected rest call {args}", file=sys.stderr)
    return 3


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
