"""validate(): every problem at once, each with the mapping line or the CSV line."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from connector.sample import Faults, generate_extract
from connector.validate import validate

from .helpers import DEFAULT_MAPPING, HR_EXTRACT


def test_clean_sample_validates() -> None:
    report = validate(DEFAULT_MAPPING, HR_EXTRACT)
    assert report.ok
    assert report.problems == []
    assert report.rows_checked == 60


def test_mapping_only() -> None:
    assert validate(DEFAULT_MAPPING).ok


def test_mapping_problems_and_warnings_have_lines(tmp_path: Path) -> None:
    m = tmp_path / "m.yaml"
    m.write_text(
        "externalId: Id\ncore:\n  userName: U\n  emails: [{value: M, type: home}]\n  titel: T\n",
        encoding="utf-8",
    )
    report = validate(m, HR_EXTRACT)
    assert not report.ok
    wheres = {(p.severity, p.where) for p in report.problems}
    assert ("error", f"{m}:5") in wheres
    assert ("warning", f"{m}:4") in wheres
    # a broken mapping still gets the extract checked for readability: this one is fine
    assert all(not p.where.startswith(str(HR_EXTRACT)) for p in report.problems)


def test_missing_columns_point_at_mapping_lines(tmp_path: Path) -> None:
    m = tmp_path / "m.yaml"
    m.write_text(
        "externalId: EmployeeId\ncore:\n  userName: Upn\n  active: {const: true}\n"
        "  title: {column: Role}\n",
        encoding="utf-8",
    )
    report = validate(m, HR_EXTRACT)
    found = {(p.where, p.message.split(" is not")[0]) for p in report.errors}
    assert found == {(f"{m}:3", "column 'Upn'"), (f"{m}:5", "column 'Role'")}


def test_row_problems_are_listed_with_csv_lines(tmp_path: Path) -> None:
    extract = tmp_path / "x.csv"
    faults = Faults(bad_field_count=1, duplicate_ids=1, bad_dates=2)
    generate_extract(extract, 300, seed=3, faults=faults)
    report = validate(DEFAULT_MAPPING, extract)
    assert not report.ok
    kinds = sorted(p.message.split(" ")[0] for p in report.errors)
    assert kinds == [
        "duplicate_external_id",
        "duplicate_external_id",
        "field_count",
        "invalid_value",
        "invalid_value",
    ]
    assert all(p.where.startswith(f"{extract}:") for p in report.errors)
    lines = [int(p.where.rsplit(":", 1)[1]) for p in report.errors]
    text = extract.read_text(encoding="utf-8").splitlines()
    for line, problem in zip(lines, report.errors, strict=True):
        if problem.message.startswith("invalid_value"):
            assert "-02-30" in text[line - 1]


def test_sample_size_limits_row_checks(tmp_path: Path) -> None:
    extract = tmp_path / "x.csv"
    generate_extract(extract, 200, seed=3, faults=Faults(bad_dates=3))
    assert validate(DEFAULT_MAPPING, extract, sample_rows=1).rows_checked == 1
    assert len(validate(DEFAULT_MAPPING, extract, sample_rows=None).errors) == 3


def test_unreadable_extract_is_reported(tmp_path: Path) -> None:
    extract = tmp_path / "x.csv"
    extract.write_bytes("EmployeeId,Name\n1,Ren\xe9e\n".encode("latin-1"))
    report = validate(DEFAULT_MAPPING, extract)
    assert [p.where for p in report.errors] == [f"{extract}:2"]
    assert "cannot decode" in report.errors[0].message


def test_over_cap_is_an_error(tmp_path: Path) -> None:
    buf = io.StringIO()
    generate_extract(buf, 40, seed=3, faults=Faults(bad_dates=5))
    extract = tmp_path / "x.csv"
    extract.write_text(buf.getvalue(), encoding="utf-8")
    report = validate(DEFAULT_MAPPING, extract)
    assert any("a sync would refuse this file" in p.message for p in report.errors)


MIXED = """externalId: EmployeeId
core:
  userName: WorkEmail
  titel: JobTitle
  displayName: {template: "{FirstName} {Surname}"}
  emails: [{value: PrivateMail}]
  active: {column: Status, transforms: [{lookup: {table: {Active: true}, default: false}}]}
extensions:
  "urn:x:hr:1.0:User":
    HireDate: {column: HireDate, transforms: [date]}
"""


def test_mapping_errors_missing_columns_and_row_problems_are_all_listed(tmp_path: Path) -> None:
    """A typo'd key, two missing columns and bad rows: every one is reported in one go."""
    m = tmp_path / "m.yaml"
    m.write_text(MIXED, encoding="utf-8")
    extract = tmp_path / "x.csv"
    generate_extract(extract, 120, seed=3, faults=Faults(bad_dates=2))
    report = validate(m, extract)
    assert not report.ok
    by_where = {p.where: p.message for p in report.errors}
    assert "titel" in by_where[f"{m}:4"]  # the mapping error
    assert by_where[f"{m}:5"].startswith("column 'Surname' is not in the header")
    assert by_where[f"{m}:6"].startswith("column 'PrivateMail' is not in the header")
    assert "rows were checked without the attributes that read it" in by_where[f"{m}:6"]
    # rows were still checked, with the attributes whose columns exist
    assert report.rows_checked == 120
    row_errors = [p for p in report.errors if p.where.startswith(f"{extract}:")]
    assert [p.message.split(" ")[0] for p in row_errors] == ["invalid_value", "invalid_value"]


def test_missing_columns_alone_still_check_rows(tmp_path: Path) -> None:
    m = tmp_path / "m.yaml"
    m.write_text(MIXED.replace("  titel: JobTitle\n", ""), encoding="utf-8")
    extract = tmp_path / "x.csv"
    generate_extract(extract, 50, seed=3, faults=Faults(bad_dates=1))
    report = validate(m, extract)
    assert report.rows_checked == 50
    assert sorted(p.message.split(" ")[0] for p in report.errors) == [
        "column",
        "column",
        "invalid_value",
    ]


def test_missing_id_column_skips_the_row_check_and_says_so(tmp_path: Path) -> None:
    m = tmp_path / "m.yaml"
    m.write_text(MIXED.replace("externalId: EmployeeId", "externalId: WorkerID"), encoding="utf-8")
    report = validate(m, HR_EXTRACT)
    assert report.rows_checked == 0
    [id_problem] = [p for p in report.errors if "'WorkerID'" in p.message]
    assert id_problem.where == f"{m}:1"
    assert id_problem.message.endswith("rows are not checked without it")


TYPOS = """externalId: EmployeeId
core:
  userName: WorkEmial
  displayName: {template: "{Firstname} {LastName}"}
  title: Nothing
  active: {const: true}
"""


def test_missing_columns_name_the_header_once_and_suggest_close_ones(tmp_path: Path) -> None:
    m = tmp_path / "m.yaml"
    m.write_text(TYPOS, encoding="utf-8")
    extract = tmp_path / "x.csv"
    generate_extract(extract, 10, seed=1)
    report = validate(m, extract)
    by_where = {p.where: p.message for p in report.errors}
    assert by_where[f"{m}:3"].startswith(
        f"column 'WorkEmial' is not in the header of {extract} (did you mean 'WorkEmail'?);"
    )
    assert "(did you mean 'FirstName' or " in by_where[f"{m}:4"]  # a case-only difference first
    assert "did you mean" not in by_where[f"{m}:5"]
    for message in by_where.values():
        assert message.count(str(extract)) == 1
        assert f"{extract}:1" not in message


def test_a_mapping_without_active_is_an_error_that_cites_the_issue(tmp_path: Path) -> None:
    m = tmp_path / "m.yaml"
    m.write_text("externalId: EmployeeId\ncore:\n  userName: WorkEmail\n", encoding="utf-8")
    extract = tmp_path / "x.csv"
    generate_extract(extract, 5, seed=1)
    report = validate(m, extract)
    [error] = [p for p in report.errors if "active" in p.message]
    assert error.where == f"{m}:1"
    assert error.message.startswith("active is not mapped: every record must carry it")
    assert "issue #16" in error.message
    assert not report.ok


def _bytes_read_from(path: Path, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """From now on, the bytes read from ``path`` when it is opened binary."""
    counter = [0]
    real_open = Path.open

    class Counting(io.FileIO):
        def readinto(self, buffer: Any) -> int | None:
            n = super().readinto(buffer)
            counter[0] += n or 0
            return n

    def spy(self: Path, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if self == path and mode == "rb":
            return io.BufferedReader(Counting(str(self), "rb"))
        return real_open(self, mode, *args, **kwargs)

    monkeypatch.setattr(Path, "open", spy)
    return counter


def test_a_whole_file_without_repeated_ids_is_read_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    extract = tmp_path / "x.csv"
    generate_extract(extract, 2_000, seed=4)
    read = _bytes_read_from(extract, monkeypatch)
    report = validate(DEFAULT_MAPPING, extract, sample_rows=None)
    assert report.ok
    assert report.rows_checked == 2_000
    size = extract.stat().st_size
    assert size <= read[0] < 1.5 * size  # the header check reads the first block again


def test_a_whole_file_with_a_repeated_id_rejects_both_rows_as_a_sample_read_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    extract = tmp_path / "x.csv"
    generate_extract(extract, 500, seed=4)
    lines = extract.read_text(encoding="utf-8").splitlines(keepends=True)
    extract.write_text("".join([*lines, lines[7]]), encoding="utf-8")
    sampled = validate(DEFAULT_MAPPING, extract, sample_rows=10_000)
    read = _bytes_read_from(extract, monkeypatch)
    whole = validate(DEFAULT_MAPPING, extract, sample_rows=None)
    size = extract.stat().st_size
    assert 2 * size <= read[0] < 3 * size  # read again once the repeat is known
    assert whole.problems == sampled.problems
    assert {p.where for p in whole.errors} == {f"{extract}:8", f"{extract}:502"}
