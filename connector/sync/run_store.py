"""Every document and artifact of a source's runs: the one way the engine reaches the
state store.

:class:`RunStore` is made of its parts, one per domain: the journals and the source's
lock (:class:`~connector.sync.journal_store.RunJournals`), a run's plan and what planning
keeps (:class:`~connector.sync.plan_store.RunPlans`), and what a run came to: outcomes,
the log book and reports (:class:`~connector.sync.result_store.RunResults`). Here are the
source's own documents (the last extract applied, the pull record, refused fingerprints,
reference re-sends), the operator markers and the record index. Where each is stored:
:mod:`connector.sync.run_keys`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any

from connector.clock import Clock
from connector.errors import StateError
from connector.state.base import PayloadUpdates, RecordIndex
from connector.state.store import StateStore
from connector.sync.journal import Journal, from_iso, to_iso
from connector.sync.journal_store import RunJournals
from connector.sync.plan_store import RunPlans
from connector.sync.result_store import RunResults
from connector.sync.run_keys import (
    approval_key,
    attempted_key,
    discard_key,
    pull_key,
    resends_key,
    source_key,
)

__all__ = ["RunStore"]


class RunStore(RunJournals, RunPlans, RunResults):
    """A source's runs in the state store: journals, markers, plans and reports."""

    def __init__(self, store: StateStore, clock: Clock) -> None:
        self.store = store
        self.clock = clock

    def __repr__(self) -> str:
        return repr(self.store)

    # -- source documents -------------------------------------------------------------------

    def last_applied(self, source: str) -> datetime | None:
        got = self.store.get_document(source_key(source))
        return from_iso(got[0].get("lastAppliedExtractAt")) if got else None

    def mark_applied(self, source: str, journal: Journal) -> None:
        got = self.store.get_document(source_key(source))
        doc = dict(got[0]) if got else {"source": source}
        new = journal.extract_at
        old = from_iso(doc.get("lastAppliedExtractAt"))
        if new is not None and (old is None or new >= old):
            doc["lastAppliedExtractAt"] = to_iso(new)
            doc["lastAppliedRunId"] = journal.run_id
        self._put(source_key(source), doc, got[1] if got else None)

    def pull_record(self, source: str) -> tuple[dict[str, Any], str | None]:
        """The source's pull record (empty before its first pull) and its etag."""
        got = self.store.get_document(pull_key(source))
        return (dict(got[0]), got[1]) if got else ({}, None)

    def save_pull_record(self, source: str, doc: Mapping[str, Any], etag: str | None) -> None:
        """Replace the version read at ``etag`` (create it when None); a conditional
        write, so two pulls of one source racing each other cannot both record."""
        self._put(pull_key(source), doc, etag)

    def attempted(self, source: str) -> tuple[dict[str, str], str | None]:
        """Fingerprints the service refused, per record, and the document's etag."""
        got = self.store.get_document(attempted_key(source))
        return (dict(got[0].get("fingerprints") or {}), got[1]) if got else ({}, None)

    def save_attempted(self, source: str, fingerprints: dict[str, str], etag: str | None) -> None:
        self._put(attempted_key(source), {"source": source, "fingerprints": fingerprints}, etag)

    def reference_resends(self, source: str) -> tuple[dict[str, tuple[str, int]], str | None]:
        """Automatic re-sends per record (fingerprint, count) and the document's etag."""
        got = self.store.get_document(resends_key(source))
        records = (got[0] if got else {}).get("records") or {}
        resent = {ext: (str(v[0]), int(v[1])) for ext, v in records.items()}
        return resent, (got[1] if got else None)

    def save_reference_resends(
        self, source: str, counts: Mapping[str, tuple[str, int]], etag: str | None
    ) -> None:
        body = {"source": source, "records": {ext: list(v) for ext, v in counts.items()}}
        self._put(resends_key(source), body, etag)

    def _put(self, key: str, doc: Mapping[str, Any], etag: str | None) -> None:
        """Create the document (``etag`` None) or replace the version read at ``etag``."""
        self.store.put_document(key, doc, if_match=etag, if_none_match=etag is None)

    # -- operator markers -------------------------------------------------------------------

    def approval_marker(self, run_id: str) -> str | None:
        """Who approved ``run_id`` with a marker document, None without a marker.

        A marker may be written by hand (``touch``, an empty blob): content that is not a
        JSON object still counts as an approval, just without a name.
        """
        return self._marker(approval_key(run_id), "approval marker")

    def discard_marker(self, run_id: str) -> str | None:
        """Who asked to discard ``run_id`` with a marker document, None without a marker
        (content that is not a JSON object still counts, just without a name)."""
        return self._marker(discard_key(run_id), "discard marker")

    def discard_markers(self, source: str) -> set[str]:
        """Run ids of ``source`` that have a discard marker."""
        return {k.rsplit("/", 1)[-1] for k in self.store.list_documents(discard_key(source + "-"))}

    def delete_markers(self, run_id: str, *, discard: bool = True) -> None:
        keys = [approval_key(run_id)] + ([discard_key(run_id)] if discard else [])
        for key in keys:
            with contextlib.suppress(StateError):
                self.store.delete_document(key)

    def _marker(self, key: str, anonymous: str) -> str | None:
        try:
            got = self.store.get_document(key)
        except StateError:
            return anonymous if key in self.store.list_documents(key) else None
        if got is None:
            return None
        by = got[0].get("by") if isinstance(got[0], Mapping) else None
        return " ".join(str(by).split())[:100] if by else anonymous

    # -- the record index -------------------------------------------------------------------

    def load_records(self, source: str) -> RecordIndex:
        return self.store.load_records(source)

    def save_records(self, index: RecordIndex, payloads: PayloadUpdates | None = None) -> None:
        if payloads is None:
            self.store.save_records(index)
        else:
            self.store.save_records(index, payloads=payloads)

    def payloads(self, source: str, external_ids: Collection[str]) -> dict[str, Any]:
        return self.store.get_payloads(source, external_ids)

    def call_counts(self) -> dict[str, int]:
        """The tenant's bulkUpload calls per hour bucket (what the daily budget counts)."""
        return self.store.load_call_counts()
