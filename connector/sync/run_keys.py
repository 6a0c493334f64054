"""Where every document and artifact of a source and its runs is stored (pure).

Per source:

==============================================  ============================================
``runs/<source>/<run id>``                      the run's journal (ETag-conditional puts
                                                while the source's lock is held)
``sources/<source>``                            the last extract applied
``pulls/<source>``                              a pulled source's last pull and watermark
``approvals/<run id>``, ``discards/<run id>``   operator markers (may be written by hand)
``attempted/<source>``                          fingerprints the service refused (400)
``reference-resends/<source>``                  automatic re-sends for manager references
``<source>/logs/<job id>.json.gz``              how far the job's provisioning logs were
                                                read (``LogCursor``) and the entries kept
                                                for runs not yet done (``LogBook``: a
                                                header, then one row per line)
``<source>/<run id>/plan.jsonl.gz``             the stored plan (records in send order)
``<source>/<run id>/batches.json.gz``           which records went into which batch,
                                                written once with the plan
``<source>/<run id>/acks/<n>-<hash>.json.gz``   sealed chunks of acknowledged batches
                                                (written once, named by the journal:
                                                :mod:`connector.sync.acks`)
``<source>/<run id>/records.jsonl.gz``          mapped records kept to plan the run again
``<source>/<run id>/rejected.json.gz``          rejected rows of the file
``<source>/<run id>/outcomes.json.gz``          each record's reconciled outcome (a JSON
                                                array, one row per line)
``<source>/<run id>/report.*``, ``failures.csv``  the reports (``held.csv`` too while held)
``index.html``                                  every run of every source, with links
``report-index``                                the index's rows, one per run (updated per
                                                report write, ETag-conditional)
==============================================  ============================================
"""

from __future__ import annotations

import re

__all__ = [
    "HELD_NAME",
    "INDEX_NAME",
    "REPORT_INDEX_KEY",
    "REPORT_NAMES",
    "ack_chunk_key",
    "approval_key",
    "artifact_key",
    "attempted_key",
    "discard_key",
    "log_book_key",
    "pull_key",
    "resends_key",
    "run_key",
    "source_key",
]

REPORT_NAMES = ("report.html", "report.json", "failures.csv")
HELD_NAME = "held.csv"
INDEX_NAME = "index.html"
REPORT_INDEX_KEY = "report-index"


def run_key(source: str, run_id: str) -> str:
    return f"runs/{source}/{run_id}"


def approval_key(run_id: str) -> str:
    return f"approvals/{run_id}"


def discard_key(run_id: str) -> str:
    """A discard marker: the next pass discards the run (``{"by": …}`` optional)."""
    return f"discards/{run_id}"


def source_key(source: str) -> str:
    return f"sources/{source}"


def pull_key(source: str) -> str:
    """A ``sql``/``rest`` source's pull record (:mod:`connector.sync.pulling`)."""
    return f"pulls/{source}"


def attempted_key(source: str) -> str:
    return f"attempted/{source}"


def resends_key(source: str) -> str:
    return f"reference-resends/{source}"


def log_book_key(source: str, job_id: str | None) -> str:
    """The job's log book: one per source and job (a changed ``job_id`` starts afresh)."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", job_id or "default").lstrip(".") or "default"
    return f"{source}/logs/{name}.json.gz"


def artifact_key(source: str, run_id: str, name: str) -> str:
    """One of a run's artifacts (``plan.jsonl.gz``, ``report.html``, …)."""
    return f"{source}/{run_id}/{name}"


def ack_chunk_key(source: str, run_id: str, name: str) -> str:
    """A sealed chunk of the run's acknowledged batches, named by its journal."""
    return f"{source}/{run_id}/acks/{name}.json.gz"
