"""The commands a held run prints, for each place a run can live."""

from __future__ import annotations

import shlex

import pytest

from connector.sync.approval_hint import ApprovalHint, approval_commands


def test_cli_commands_carry_the_flags_and_the_run_id() -> None:
    cmds = approval_commands(ApprovalHint.cli("--config s.yaml --state st"), "employees-ab12")
    assert cmds.kind == "cli"
    assert cmds.approve == "connector runs approve employees-ab12 --config s.yaml --state st"
    assert cmds.discard == "connector runs discard employees-ab12 --config s.yaml --state st"


def test_approvals_blob_commands_name_the_marker_blobs_of_the_run() -> None:
    cmds = approval_commands(ApprovalHint.approvals_blob("stabc123"), "employees-ab12")
    approve, discard = shlex.split(cmds.approve), shlex.split(cmds.discard)
    assert approve[:4] == ["az", "storage", "blob", "upload"]
    assert approve[approve.index("--account-name") + 1] == "stabc123"
    assert approve[approve.index("--container-name") + 1] == "approvals"
    assert approve[approve.index("--name") + 1] == "employees-ab12"
    assert discard[discard.index("--name") + 1] == "employees-ab12.discard"
    assert "--auth-mode" in approve
    assert approve[approve.index("--auth-mode") + 1] == "login"


def test_an_approvals_blob_hint_needs_an_account() -> None:
    with pytest.raises(ValueError, match="storage account"):
        ApprovalHint.approvals_blob("")
