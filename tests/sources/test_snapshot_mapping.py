"""A staging table holding the sample extract maps to exactly the records the CSV export
maps to, through the unchanged file path; ``validate`` names a column the table lacks."""

from __future__ import annotations

import csv
import sqlite3
from pathlib import Path

from connector.mapping import load_mapping
from connector.records import iter_records
from connector.sources.models import SqlSettings
from connector.sources.snapshot import write_snapshot
from connector.sources.sql import pull_sql
from connector.validate import validate

ROOT = Path(__file__).resolve().parents[2]
EXTRACT = ROOT / "samples" / "hr-extract.csv"
MAPPING = ROOT / "samples" / "mappings" / "default.yaml"


def _staging_table(tmp_path: Path, drop: str | None = None) -> str:
    with EXTRACT.open(encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    keep = [i for i, c in enumerate(header) if c != drop]
    db = tmp_path / "staging.db"
    with sqlite3.connect(db) as conn:
        cols = ", ".join(f'"{header[i]}" TEXT' for i in keep)
        conn.execute(f"CREATE TABLE employees ({cols})")
        marks = ", ".join("?" for _ in keep)
        conn.executemany(
            f"INSERT INTO employees VALUES ({marks})",
            # an empty CSV field is NULL in a staging table; both become ""
            [[r[i] or None for i in keep] for r in body],
        )
    conn.close()
    return f"sqlite:///{db}"


def _records(path: Path) -> list[tuple[str, dict[str, object]]]:
    with iter_records(path, load_mapping(MAPPING)) as stream:
        return [(r.external_id, r.data) for r in stream]


def test_a_staging_table_maps_to_the_same_records_as_its_csv_export(tmp_path: Path) -> None:
    url = _staging_table(tmp_path)
    snap = pull_sql("hr-sql", SqlSettings(url=url, table="employees"), settings={})
    try:
        from_table = _records(snap.path)
    finally:
        snap.discard()
    from_csv = _records(EXTRACT)
    assert len(from_table) == 60
    assert from_table == from_csv


def test_validate_names_a_column_the_source_lacks(tmp_path: Path) -> None:
    url = _staging_table(tmp_path, drop="WorkEmail")
    snap = pull_sql("hr-sql", SqlSettings(url=url, table="employees"), settings={})
    try:
        report = validate(MAPPING, snap.path)
    finally:
        snap.discard()
    assert not report.ok
    assert any("column 'WorkEmail' is not in the header" in p.message for p in report.errors)


def test_write_snapshot_hashes_exactly_the_bytes_it_wrote(tmp_path: Path) -> None:
    import hashlib

    snap = write_snapshot("s", ["a", "b"], [["1", "x\ny"], ["2", ""]], directory=tmp_path)
    assert snap.path.read_bytes() == b'a,b\n1,"x\ny"\n2,\n'
    assert hashlib.sha256(snap.path.read_bytes()).hexdigest() == snap.sha256


def test_a_pull_lacking_a_mapped_column_is_refused_naming_the_source(tmp_path: Path) -> None:
    import pytest

    from connector.errors import ExtractError

    url = _staging_table(tmp_path, drop="WorkEmail")
    snap = pull_sql("hr-sql", SqlSettings(url=url, table="employees"), settings={})
    try:
        with (
            pytest.raises(ExtractError, match=r"^hr-sql pull, line 1: .*lacks columns.*WorkEmail"),
            iter_records(snap.path, load_mapping(MAPPING), label="hr-sql pull") as stream,
        ):
            list(stream)
    finally:
        snap.discard()
