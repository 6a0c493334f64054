"""A run held in Azure tells the operator how to release it there: the approvals-blob
uploads (docs/deploy.md step 7) with the account and run id filled in, not CLI commands
with placeholders."""

from __future__ import annotations

import html
import shlex
from pathlib import Path
from typing import Any

import orjson
import pytest

from .runs import held_run


def _option(command: str, name: str) -> str:
    words = shlex.split(command)
    return words[words.index(name) + 1]


@pytest.mark.azurite
def test_a_report_held_in_azure_shows_the_approval_blob_uploads_for_its_account(
    make_world: Any, tmp_path: Path
) -> None:
    with make_world() as w:
        held = held_run(w, tmp_path)
        account = w.service.account_name
        page = html.unescape(w.read("reports", f"employees/{held.run_id}/report.html").decode())
        doc = orjson.loads(w.read("reports", f"employees/{held.run_id}/report.json"))

        hint = doc["approvalHint"]
        assert hint["kind"] == "approvals_blob"
        for command in (hint["approve"], hint["discard"]):
            assert command.startswith("az storage blob upload --auth-mode login")
            assert _option(command, "--account-name") == account
            assert _option(command, "--container-name") == "approvals"
            assert command in page
        assert _option(hint["approve"], "--name") == held.run_id
        assert _option(hint["discard"], "--name") == f"{held.run_id}.discard"
        assert orjson.loads(_option(hint["discard"], "--data")).keys() == {"by", "reason"}
        assert "SOURCES.yaml" not in page
        assert "ACCOUNT" not in page
        assert "connector runs approve" not in page


@pytest.mark.parametrize(
    ("which", "states"),
    [("discard", {"discarded"}), ("approve", {"uploaded", "reconciling", "done"})],
)
@pytest.mark.azurite
def test_the_printed_marker_upload_acts_on_the_held_run(
    make_world: Any, tmp_path: Path, which: str, states: set[str]
) -> None:
    with make_world() as w:
        held = held_run(w, tmp_path)
        doc = orjson.loads(w.read("reports", f"employees/{held.run_id}/report.json"))
        command = doc["approvalHint"][which]
        blob = w.service.get_blob_client("approvals", _option(command, "--name"))
        blob.upload_blob(_option(command, "--data").encode())

        w.tick(minutes=15)
        assert next(r for r in w.runs() if r.run_id == held.run_id).state in states
