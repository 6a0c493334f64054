"""How an operator releases or drops a held run, where the run lives.

A host says how (:class:`ApprovalHint`); :func:`approval_commands` spells the two commands a
held run's report and ``runs show`` print. The CLI host prints ``connector runs approve …``
with the non-secret options it was given (never a token value: a ``--token`` is left to
``CONNECTOR_TOKEN``); the Functions host prints the approvals-blob markers documented in
docs/deploy.md step 7 (``approvals/<run id>`` approves, ``approvals/<run id>.discard``
discards, an optional JSON body with ``by``/``reason``)."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from typing import Literal

__all__ = ["APPROVALS_CONTAINER", "ApprovalCommands", "ApprovalHint", "approval_commands"]

APPROVALS_CONTAINER = "approvals"


@dataclass(frozen=True, slots=True)
class ApprovalHint:
    """``kind="cli"``: ``flags`` are appended to ``connector runs approve|discard ID``;
    ``kind="approvals_blob"``: ``account`` is the storage account holding the
    ``approvals`` container."""

    kind: Literal["cli", "approvals_blob"] = "cli"
    flags: str = ""
    account: str = ""

    def __post_init__(self) -> None:
        if self.kind == "approvals_blob" and not self.account:
            raise ValueError("an approvals-blob hint needs the storage account name")

    @classmethod
    def cli(cls, flags: str) -> ApprovalHint:
        return cls("cli", flags=flags)

    @classmethod
    def approvals_blob(cls, account: str) -> ApprovalHint:
        return cls("approvals_blob", account=account)


@dataclass(frozen=True, slots=True)
class ApprovalCommands:
    """The pasteable approve and discard commands for one held run."""

    kind: str
    approve: str
    discard: str


_AZ_UPLOAD = (
    "az storage blob upload --auth-mode login --account-name {account} "
    "--container-name " + APPROVALS_CONTAINER + " --name {name} "
    "--data {body} --content-type application/json"
)


def approval_commands(hint: ApprovalHint, run_id: str) -> ApprovalCommands:
    """The commands that approve and discard ``run_id`` under ``hint`` (run id and account
    filled in and shell-quoted)."""
    if hint.kind == "approvals_blob":
        account = shlex.quote(hint.account)
        approve = _AZ_UPLOAD.format(
            account=account,
            name=shlex.quote(run_id),
            body=shlex.quote(json.dumps({"by": "<you>"})),
        )
        discard = _AZ_UPLOAD.format(
            account=account,
            name=shlex.quote(run_id + ".discard"),
            body=shlex.quote(json.dumps({"by": "<you>", "reason": "<why>"})),
        )
        return ApprovalCommands(hint.kind, approve, discard)
    tail = f" {hint.flags}" if hint.flags else ""
    rid = shlex.quote(run_id)
    return ApprovalCommands(
        hint.kind, f"connector runs approve {rid}{tail}", f"connector runs discard {rid}{tail}"
    )
