"""Shared helpers for the core tests."""

from __future__ import annotations

import io
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples"
DEFAULT_MAPPING = SAMPLES / "mappings" / "default.yaml"
CSV2SCIM_MAPPING = SAMPLES / "mappings" / "csv2scim.yaml"
HR_EXTRACT = SAMPLES / "hr-extract.csv"
CSV2SCIM_EXTRACT = SAMPLES / "csv2scim-extract.csv"
GOLDEN = Path(__file__).resolve().parent / "golden"


def stream(text: str, encoding: str = "utf-8") -> io.BytesIO:
    """A binary stream of ``text``; ``utf-16-le``/``utf-16-be`` get their BOM."""
    data = text.encode(encoding)
    if encoding == "utf-16-le":
        data = b"\xff\xfe" + data
    elif encoding == "utf-16-be":
        data = b"\xfe\xff" + data
    return io.BytesIO(data)
