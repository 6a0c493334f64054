"""Helpers of the source tests."""

from __future__ import annotations

import csv
from pathlib import Path

from connector.config import Source, parse_sources

ENDPOINT = (
    "https://graph.microsoft.com/beta/servicePrincipals/00000000-0000-0000-0000-000000000000"
    "/synchronization/jobs/API2AD.0123456789abcdef0123456789abcdef.00000000-0000-0000-0000-000000000000/bulkUpload"
)


def read_csv(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.reader(f))


def source_from(block: str) -> Source:
    """A one-source config whose source body is ``block`` (YAML, indented 4)."""
    text = f"sources:\n  - name: hr\n    mapping: m.yaml\n    endpoint: {ENDPOINT}\n{block}"
    return parse_sources(text).sources[0]
