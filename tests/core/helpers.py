"""Shared helpers for the core tests."""

from __future__ import annotations

import io
from pathlib import Path

from connector.extract import ExtractProfile, ExtractReader, read_extract

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


LENIENT = ExtractProfile(max_rejected_share=1.0)


def rows_of(
    data: io.BytesIO | Path, profile: ExtractProfile = LENIENT, id_column: str | None = "Id"
) -> tuple[ExtractReader, list[tuple[int, dict[str, str]]]]:
    """Every accepted row of ``data`` as ``(line, values)``, and the reader (for its rejections)."""
    reader = read_extract(data, profile, id_column=id_column)
    return reader, [(r.line, r.values) for r in reader]


def filler(n: int, start: int = 0, ncols: int = 3) -> str:
    """``n`` clean three-column rows with ids from ``start`` (enough of them span blocks)."""
    return "".join(f"{i},{'n' * 40},{'v' * 30}\n" for i in range(start, start + n))
