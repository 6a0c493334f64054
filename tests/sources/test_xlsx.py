""".xlsx extracts: converted, streaming, to the canonical CSV and read by the one CSV path."""

from __future__ import annotations

import csv
import io
import zipfile
from datetime import datetime
from pathlib import Path
from typing import Any

import openpyxl
import pytest
import yaml

from connector.config import Source
from connector.errors import ExtractError, MappingError, ReadAgainError
from connector.mapping import load_mapping
from connector.records import iter_records
from connector.sources.xlsx import as_csv, is_xlsx, xlsx_to_csv
from connector.sync.engine import spooled
from connector.sync.readers import Rereadable, read_mapped_records

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "samples" / "hr-extract.csv"
MAPPING = ROOT / "samples" / "mappings" / "default.yaml"


def _typed(column: str, text: str) -> Any:
    """A cell as an HR system's Excel export holds it: ids as numbers, dates as dates."""
    if text == "":
        return None
    if column in ("EmployeeId", "ManagerId"):
        return float(text)  # Excel stores every number as a double: 100002.0
    if column in ("HireDate", "LeaveDate"):
        return datetime.fromisoformat(text)
    return text


def _write_book(path: Path, rows: list[list[Any]], *, title: str = "Workers") -> Path:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = title
    for row in rows:
        sheet.append(row)
    for cells in sheet.iter_rows(min_row=2):
        for cell in cells:
            if isinstance(cell.value, datetime):
                cell.number_format = "yyyy-mm-dd"
    book.save(path)
    return path


def _sample_book(path: Path, **kwargs: Any) -> Path:
    with SAMPLE.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    header = rows[0]
    typed = [[_typed(c, v) for c, v in zip(header, row, strict=True)] for row in rows[1:]]
    return _write_book(path, [header, *typed], **kwargs)


def _source(mapping: Path) -> Source:
    return Source.model_validate(
        {
            "name": "hr",
            "match": "*",
            "mapping": str(mapping),
            "endpoint": "https://graph.microsoft.com/v1.0/servicePrincipals/sp/synchronization/jobs/job/bulkUpload",
        }
    )


def _mapping_with_sheet(tmp_path: Path, sheet: str) -> Path:
    return _mapping_with(tmp_path, sheet=sheet)


def _mapping_with(tmp_path: Path, **extract: Any) -> Path:
    spec = yaml.safe_load(MAPPING.read_text(encoding="utf-8"))
    spec.setdefault("extract", {}).update(extract)
    out = tmp_path / "mapping.yaml"
    out.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return out


def test_an_xlsx_extract_maps_to_the_same_records_as_the_csv(tmp_path: Path) -> None:
    book = _sample_book(tmp_path / "hr-extract.xlsx")
    from_csv = iter_records(SAMPLE, load_mapping(MAPPING))
    with from_csv:
        expected = [(r.line, r.external_id, r.data) for r in from_csv]
    got = [(r.line, r.external_id, r.data) for r in read_mapped_records(_source(MAPPING), book)]
    assert expected
    assert got == expected


def test_numbers_lose_float_noise_and_date_cells_become_iso_dates(tmp_path: Path) -> None:
    book = _write_book(
        tmp_path / "x.xlsx",
        [
            ["Id", "Start", "Active", "Rate", "Note"],
            [100002.0, datetime(2024, 3, 1), True, 12.5, None],
            [7, datetime(2024, 3, 1, 9, 30), False, 0.1, "a,b"],
        ],
    )
    out = tmp_path / "x.csv"
    xlsx_to_csv(book, out, label="x.xlsx")
    assert out.read_text(encoding="utf-8") == (
        "Id,Start,Active,Rate,Note\n"
        "100002,2024-03-01,true,12.5,\n"
        '7,2024-03-01T09:30:00,false,0.1,"a,b"\n'
    )


def test_a_value_past_the_header_is_rejected_like_a_long_csv_line(tmp_path: Path) -> None:
    with SAMPLE.open(encoding="utf-8", newline="") as fh:
        rows: list[list[Any]] = list(csv.reader(fh))[:4]
    rows[2] = [*rows[2], None, "stray"]
    rows[3] = [*rows[3], None, None]
    book = _write_book(tmp_path / "wide.xlsx", rows)
    extract = read_mapped_records(_source(_mapping_with(tmp_path, max_rejected_share=1.0)), book)
    assert [r.line for r in extract] == [2, 4]
    assert [r.line for r in extract.rejected] == [3]


def test_rejected_rows_carry_the_sheet_row_numbers(tmp_path: Path) -> None:
    with SAMPLE.open(encoding="utf-8", newline="") as fh:
        rows: list[list[Any]] = list(csv.reader(fh))[:6]
    rows.insert(3, [])  # sheet row 4 is empty
    rows.append(list(rows[1]))  # sheet row 8 repeats row 2's id
    book = _write_book(tmp_path / "dup.xlsx", rows)
    mapping = _mapping_with(tmp_path, max_rejected_share=1.0)
    first = read_mapped_records(_source(mapping), book)
    assert isinstance(first, Rereadable)
    with pytest.raises(ReadAgainError) as repeated:
        list(first)  # the id repeats: read the converted sheet again
    extract = first.again(repeated.value.duplicates)
    records = list(extract)
    assert [r.line for r in records] == [3, 5, 6, 7]
    assert sorted(r.line for r in extract.rejected) == [2, 8]


def test_the_mapping_names_the_sheet_to_read(tmp_path: Path) -> None:
    book = openpyxl.Workbook()
    first = book.active
    assert first is not None
    first.title = "Notes"
    first.append(["not", "the", "data"])
    data = book.create_sheet("Workers")
    with SAMPLE.open(encoding="utf-8", newline="") as fh:
        for row in list(csv.reader(fh))[:4]:
            data.append(row)
    path = tmp_path / "two-sheets.xlsx"
    book.save(path)
    mapping = _mapping_with_sheet(tmp_path, "Workers")
    records = list(read_mapped_records(_source(mapping), path))
    assert [r.external_id for r in records] == ["100001", "100002", "100003"]


def test_a_missing_sheet_is_one_line_naming_the_file_and_the_sheets(tmp_path: Path) -> None:
    book = _sample_book(tmp_path / "hr.xlsx")
    mapping = _mapping_with_sheet(tmp_path, "Staff")
    with pytest.raises(ExtractError) as err:
        read_mapped_records(_source(mapping), book)
    assert str(err.value) == "hr.xlsx: no sheet named 'Staff' (sheets: 'Workers')"


def test_a_corrupt_workbook_is_one_line_naming_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "broken.xlsx"
    bad.write_bytes(b"PK\x03\x04" + b"\x00" * 200)
    with pytest.raises(ExtractError, match=r"^broken\.xlsx: not a readable \.xlsx workbook"):
        read_mapped_records(_source(MAPPING), bad)


def test_a_workbook_with_a_damaged_sheet_is_one_line_naming_the_file(tmp_path: Path) -> None:
    good = _sample_book(tmp_path / "good.xlsx")
    bad = tmp_path / "damaged.xlsx"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(bad, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                data = data[: len(data) // 2]  # cut off mid-sheet
            dst.writestr(item, data)
    with pytest.raises(ExtractError, match=r"^damaged\.xlsx: not a readable \.xlsx workbook"):
        list(read_mapped_records(_source(MAPPING), bad))


def test_a_password_protected_workbook_is_refused_by_name(tmp_path: Path) -> None:
    locked = tmp_path / "locked.xlsx"
    locked.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 504)
    with pytest.raises(ExtractError) as err:
        read_mapped_records(_source(MAPPING), locked)
    assert str(err.value) == (
        "locked.xlsx: the workbook is password-protected (encrypted); save it without a password"
    )
    assert "\n" not in str(err.value)


def test_an_empty_sheet_is_one_line_naming_the_file(tmp_path: Path) -> None:
    book = _write_book(tmp_path / "empty.xlsx", [])
    with pytest.raises(ExtractError, match=r"^empty\.xlsx: the sheet is empty"):
        read_mapped_records(_source(MAPPING), book)


def test_a_sheet_whose_first_row_is_empty_has_no_header(tmp_path: Path) -> None:
    book = _write_book(tmp_path / "late.xlsx", [[], ["EmployeeId"], ["1"]])
    with pytest.raises(ExtractError, match=r"^late\.xlsx: the sheet's first row is empty"):
        read_mapped_records(_source(MAPPING), book)


def test_a_dropped_workbook_stream_is_recognised_and_hashed_as_dropped(tmp_path: Path) -> None:
    book = _sample_book(tmp_path / "hr.xlsx")
    data = book.read_bytes()
    with spooled(io.BytesIO(data), "employees/hr.xlsx") as (path, sha):
        assert path.name == "hr.xlsx"
        assert is_xlsx(path)
        records = list(read_mapped_records(_source(MAPPING), path))
    with spooled(book, "hr.xlsx") as (_, again):
        assert again == sha
    assert len(records) > 10


def test_a_workbook_without_its_suffix_is_recognised_by_its_magic_bytes(tmp_path: Path) -> None:
    book = _sample_book(tmp_path / "hr.xlsx")
    renamed = book.rename(tmp_path / "hr-export")
    assert is_xlsx(renamed)
    assert not is_xlsx(SAMPLE)


def test_the_converted_csv_is_deleted_once_read(tmp_path: Path) -> None:
    book = _sample_book(tmp_path / "hr.xlsx")
    with as_csv(book) as converted:
        assert converted != book
        assert converted.exists()
    assert not converted.exists()
    with as_csv(SAMPLE) as same:
        assert same == SAMPLE


def test_the_sheet_key_must_be_text(tmp_path: Path) -> None:
    spec = yaml.safe_load(MAPPING.read_text(encoding="utf-8"))
    spec.setdefault("extract", {})["sheet"] = 3
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    with pytest.raises(MappingError, match=r"extract\.sheet has the wrong type"):
        load_mapping(path)
