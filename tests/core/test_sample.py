"""The sample generator: deterministic, realistic, consistent hierarchy, faults on request."""

from __future__ import annotations

import csv
import io
from datetime import date
from pathlib import Path

import pytest

from connector.extract import ExtractProfile, read_extract
from connector.mapping import load_mapping
from connector.records import iter_records
from connector.sample import (
    CSV2SCIM_COLUMNS,
    DEFAULT_COLUMNS,
    FIRST_NAMES,
    LAST_NAMES,
    Faults,
    _user_name,
    churn_extract,
    generate_extract,
)

from .helpers import CSV2SCIM_EXTRACT, CSV2SCIM_MAPPING, DEFAULT_MAPPING, HR_EXTRACT


def gen(rows: int, seed: int = 1, layout: str = "default", **kw: object) -> list[dict[str, str]]:
    buf = io.StringIO()
    generate_extract(buf, rows, seed, layout, **kw)  # type: ignore[arg-type]
    return list(csv.DictReader(io.StringIO(buf.getvalue())))


def test_bundled_samples_are_generator_output() -> None:
    buf = io.StringIO()
    generate_extract(buf, 60, seed=7)
    assert HR_EXTRACT.read_text(encoding="utf-8") == buf.getvalue()
    buf = io.StringIO()
    generate_extract(buf, 20, seed=3, layout="csv2scim")
    assert CSV2SCIM_EXTRACT.read_text(encoding="utf-8") == buf.getvalue()


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "c.csv"
    generate_extract(a, 300, seed=5)
    generate_extract(b, 300, seed=5)
    generate_extract(c, 300, seed=6)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()


@pytest.mark.parametrize(
    ("layout", "columns"), [("default", DEFAULT_COLUMNS), ("csv2scim", CSV2SCIM_COLUMNS)]
)
def test_layouts_hierarchy_and_uniqueness(layout: str, columns: tuple[str, ...]) -> None:
    rows = gen(5000, layout=layout)
    assert tuple(rows[0]) == columns
    id_col, mgr_col = columns[0], ("ManagerId" if layout == "default" else "ManagerID")
    ids = [r[id_col] for r in rows]
    assert len(set(ids)) == len(ids)
    roots = [r for r in rows if not r[mgr_col]]
    assert len(roots) == 1
    assert {r[mgr_col] for r in rows if r[mgr_col]} <= set(ids)
    users = [r["WorkEmail" if layout == "default" else "UserID"] for r in rows]
    assert len(set(users)) == len(users)
    assert any(not (r["FirstName"] + r["LastName"]).isascii() for r in rows)
    assert len({r["Department"] for r in rows}) > 5
    assert len({r["CostCenter"] for r in rows}) > 5
    if layout == "csv2scim":
        assert len(columns) == 24


def test_user_names_stay_unique_past_the_name_pairs() -> None:
    pairs = len(FIRST_NAMES) * len(LAST_NAMES)
    folded = {_user_name(f, ln, 0) for f in FIRST_NAMES for ln in LAST_NAMES}
    assert len(folded) == pairs
    rows = gen(pairs + 10)
    emails = [r["WorkEmail"] for r in rows]
    assert len(set(emails)) == len(emails)
    assert all(e.isascii() for e in emails)


def test_faults_are_planted_as_asked() -> None:
    faults = Faults(
        bad_field_count=3, duplicate_ids=2, bad_dates=4, duplicate_upn=True, unresolved_manager=True
    )
    buf = io.StringIO()
    generate_extract(buf, 400, 9, faults=faults)
    data = buf.getvalue().encode()
    reader = read_extract(
        io.BytesIO(data), ExtractProfile(max_rejected_share=1.0), id_column="EmployeeId"
    )
    rows = list(reader)
    reasons = reader.stats.rejected_by_reason
    assert reasons["field_count"] == 3
    assert reasons["duplicate_external_id"] == 4  # both rows of each pair
    ids = {r.values["EmployeeId"] for r in rows}
    unresolved = [r for r in rows if r.values["ManagerId"] and r.values["ManagerId"] not in ids]
    assert len(unresolved) == 1
    emails = [r.values["WorkEmail"] for r in rows]
    assert len(emails) - len(set(emails)) == 1
    mapping = load_mapping(DEFAULT_MAPPING)
    stream = iter_records(io.BytesIO(data), mapping, profile=ExtractProfile(max_rejected_share=1.0))
    list(stream)
    assert stream.stats.rejected_by_reason["invalid_value"] == 4


def test_too_many_faults_for_the_rows() -> None:
    with pytest.raises(ValueError, match="do not fit"):
        gen(5, faults=Faults(bad_dates=10))


@pytest.mark.parametrize("layout", ["default", "csv2scim"])
def test_churn_produces_next_day(tmp_path: Path, layout: str) -> None:
    prev, nxt = tmp_path / "d1.csv", tmp_path / "d2.csv"
    generate_extract(prev, 3000, seed=2, layout=layout)  # type: ignore[arg-type]
    counts = churn_extract(prev, nxt, churn=0.03, seed=4, as_of=date(2026, 2, 1))
    assert counts["hires"] == 30
    assert counts["movers"] > 10
    assert counts["leavers_inactive"] + counts["leavers_removed"] > 10
    before = list(csv.DictReader(prev.open(encoding="utf-8")))
    after = list(csv.DictReader(nxt.open(encoding="utf-8")))
    id_col = "EmployeeId" if layout == "default" else "WorkerID"
    mgr_col = "ManagerId" if layout == "default" else "ManagerID"
    assert len(after) == len(before) - counts["leavers_removed"] + counts["hires"]
    ids = [r[id_col] for r in after]
    assert len(set(ids)) == len(ids)
    assert {r[mgr_col] for r in after if r[mgr_col]} <= set(ids)
    mapping = load_mapping(DEFAULT_MAPPING if layout == "default" else CSV2SCIM_MAPPING)
    assert sum(1 for _ in iter_records(nxt, mapping)) == len(after)
    again = tmp_path / "d2b.csv"
    churn_extract(prev, again, churn=0.03, seed=4, as_of=date(2026, 2, 1))
    assert again.read_bytes() == nxt.read_bytes()
