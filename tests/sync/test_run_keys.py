"""Where a run's documents are stored."""

from __future__ import annotations

from connector.sync.run_keys import approval_key, discard_key, run_key


def test_keys_of_a_run() -> None:
    assert run_key("employees", "employees-abc") == "runs/employees/employees-abc"
    assert approval_key("employees-abc") == "approvals/employees-abc"
    assert discard_key("employees-abc") == "discards/employees-abc"
