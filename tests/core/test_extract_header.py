"""The header of an extract: the delimiter sniffed or configured, names cleaned, empty or
repeated names and a missing id column refused; a headerless extract (its first data
row read as the header) leaks none of its values.

The first row of such a file is a person: name, e-mail, phone, street. Header errors go
to logs, run journals and reports, so they describe the problem by count and position
and say the first line looks like data; they never echo a cell.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest
from typer.testing import CliRunner

from benchmarks.emuworld import JOB, SP
from connector.cli.app import build_app
from connector.emulator.config import EmulatorConfig, JobConfig
from connector.emulator.server import run_emulator
from connector.errors import ExtractError
from connector.extract import ExtractProfile, read_extract
from connector.extract_header import header_looks_like_data, sniff
from connector.mapping import load_mapping
from connector.validate import validate
from tests.cli.helpers import write_config
from tests.core.helpers import DEFAULT_MAPPING, HR_EXTRACT, rows_of, stream

runner = CliRunner()

_LINES = HR_EXTRACT.read_text(encoding="utf-8").splitlines(keepends=True)
#: the sample's header names, which may appear in messages (they are the mapping's words)
_HEADER_NAMES = set(_LINES[0].strip().split(","))


def _values(first_line: str) -> list[str]:
    """The cells of a data line worth looking for in output (not blank, not a header word)."""
    cells = [c.strip() for c in first_line.strip().split(",")]
    return [c for c in cells if len(c) >= 2 and c not in _HEADER_NAMES]


def _headerless(tmp_path: Path, *, duplicate_cells: bool) -> tuple[Path, list[str]]:
    """The sample extract without its header line: the first data row becomes the header.

    The sample's first row repeats its first name as the preferred name (duplicate cells);
    without ``duplicate_cells`` the preferred name is changed, so the header has no repeat.
    """
    body = _LINES[1:]
    first = body[0]
    if not duplicate_cells:
        cells = first.rstrip("\n").split(",")
        cells[5] = "Arjuna"
        first = ",".join(cells) + "\n"
        body = [first, *body[1:]]
    path = tmp_path / "employees" / "hr-headerless.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(body), encoding="utf-8")
    values = _values(first)
    assert len(values) > 10  # the test means something: names, e-mail, phones, street
    return path, values


def _assert_clean(text: str, values: list[str]) -> None:
    leaked = [v for v in values if v in text]
    assert not leaked, f"personal values leaked: {leaked} in {text!r}"


@pytest.fixture(params=[True, False], ids=["duplicate-cells", "distinct-cells"])
def headerless(
    request: pytest.FixtureRequest, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> tuple[Path, list[str]]:
    """A headerless extract and its first row's values; every log record is captured."""
    caplog.set_level(logging.DEBUG)
    return _headerless(tmp_path, duplicate_cells=request.param)


def test_headerless_extract_error_names_no_value_of_the_first_row(
    tmp_path: Path, headerless: tuple[Path, list[str]], caplog: pytest.LogCaptureFixture
) -> None:
    path, values = headerless
    with pytest.raises(ExtractError) as info:
        read_extract(path, id_column="EmployeeId")
    text = str(info.value)
    assert "the first line looks like data" in text
    assert info.value.line == 1
    _assert_clean(text, values)
    _assert_clean("\n".join(r.getMessage() for r in caplog.records), values)


def test_duplicate_header_names_are_reported_by_position_only() -> None:
    with pytest.raises(ExtractError) as info:
        read_extract(stream("Id,Name,Id,Mail,Name\n1,a,2,b,c\n"))
    text = str(info.value)
    assert "the same column name at positions 1, 3" in text
    assert "the same column name at positions 2, 5" in text
    assert "Name" not in text
    assert "looks like data" not in text  # a real header gets no such hint


def test_missing_id_column_in_a_real_header_suggests_only_a_close_name() -> None:
    with pytest.raises(ExtractError) as info:
        read_extract(stream("EmployeeID,GivenName\n1,a\n"), id_column="EmployeeId")
    text = str(info.value)
    assert "is not among the 2 columns" in text
    assert "did you mean 'EmployeeID'?" in text
    assert "GivenName" not in text


@pytest.mark.parametrize(
    ("header", "data"),
    [
        (["100002", "Active", "Garcia"], True),
        (["Id", "Mail", "jane.doe@contoso.com"], True),
        (["Id", "Phone", "+353 1 690 7499"], True),
        (["Id", "Hired", "2020-07-14"], True),
        (["EmployeeId", "FirstName", "Address2", "Cost-Center"], False),
    ],
)
def test_header_looks_like_data(header: list[str], data: bool) -> None:
    assert header_looks_like_data(header) is data


def test_validate_on_a_headerless_extract_names_no_value(
    tmp_path: Path, headerless: tuple[Path, list[str]], caplog: pytest.LogCaptureFixture
) -> None:
    path, values = headerless
    report = validate(DEFAULT_MAPPING, path)
    assert not report.ok
    text = "\n".join(map(str, report.problems))
    assert "the first line looks like data" in text
    _assert_clean(text, values)
    _assert_clean("\n".join(r.getMessage() for r in caplog.records), values)


def test_cli_validate_and_preview_print_no_value_of_a_headerless_extract(
    tmp_path: Path, headerless: tuple[Path, list[str]], caplog: pytest.LogCaptureFixture
) -> None:
    path, values = headerless
    app = build_app()
    checked = runner.invoke(app, ["validate", "--mapping", str(DEFAULT_MAPPING), str(path)])
    assert checked.exit_code == 1, checked.output
    assert "the first line looks like data" in checked.output
    _assert_clean(checked.output, values)
    out = tmp_path / "out"
    shown = runner.invoke(
        app, ["preview", str(path), "--mapping", str(DEFAULT_MAPPING), "--out", str(out)]
    )
    assert shown.exit_code == 1, shown.output
    assert "the first line looks like data" in shown.output
    _assert_clean(shown.output, values)
    for written in out.glob("*") if out.exists() else []:
        _assert_clean(written.read_text(encoding="utf-8"), values)
    _assert_clean("\n".join(r.getMessage() for r in caplog.records), values)


def test_the_mapping_used_here_reads_the_sample_header() -> None:
    """Guards the test above: with its header, the sample maps (so the failure is the header)."""
    mapping = load_mapping(DEFAULT_MAPPING)
    assert set(mapping.required_columns) <= _HEADER_NAMES


def test_a_sync_of_a_headerless_extract_stores_no_value_in_journal_or_report(
    tmp_path: Path, headerless: tuple[Path, list[str]], caplog: pytest.LogCaptureFixture
) -> None:
    """Through ``connector sync`` against the emulator: the run fails with the header reason,
    and neither the output, the log, the run journal nor report.json/html/failures.csv
    holds a value of the first row."""
    path, values = headerless
    config = write_config(tmp_path / "sources.yaml")
    state = tmp_path / "state"
    common = ["--config", str(config), "--state", str(state)]
    dry = runner.invoke(
        build_app(), ["sync", str(path), "--source", "employees", *common, "--dry-run"]
    )
    assert dry.exit_code == 1, dry.output
    _assert_clean(dry.output, values)
    emu_cfg = EmulatorConfig(jobs=[JobConfig(service_principal_id=SP, job_id=JOB)])
    with run_emulator(emu_cfg) as emu:
        net = ["--endpoint", emu.endpoint_url, "--token", emu.token, "--allow-loopback"]
        res = runner.invoke(
            build_app(), ["sync", str(path), "--source", "employees", *common, *net]
        )
        assert not emu.users()
    assert res.exit_code == 1, res.output
    assert "failed" in res.output
    assert "the first line looks like data" in res.output
    _assert_clean(res.output, values)
    stored = [p for p in state.rglob("*") if p.is_file()]
    names = {p.name for p in stored}
    assert {"report.json", "report.html", "failures.csv"} <= names
    assert any("runs" in p.parts for p in stored)  # the run journal
    for p in stored:
        _assert_clean(p.read_bytes().decode("utf-8", errors="replace"), values)
    _assert_clean("\n".join(r.getMessage() for r in caplog.records), values)


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_delimiter_is_sniffed_from_header(delimiter: str) -> None:
    text = delimiter.join(["Id", "Name", "City"]) + "\n" + delimiter.join(["1", "A", "B"]) + "\n"
    reader, rows = rows_of(stream(text))
    assert reader.delimiter == delimiter
    assert rows == [(2, {"Id": "1", "Name": "A", "City": "B"})]


def test_sniff_ignores_delimiters_inside_quotes() -> None:
    reader, _ = rows_of(stream('"Id;x","Name;y"\n1,2\n'), id_column=None)
    assert reader.delimiter == ","
    assert reader.header == ["Id;x", "Name;y"]


def test_configured_delimiter_wins() -> None:
    reader, rows = rows_of(
        stream("Id;Name,Full\n1;a,b\n"), ExtractProfile(delimiter=";", max_rejected_share=1)
    )
    assert reader.header == ["Id", "Name,Full"]
    assert rows == [(2, {"Id": "1", "Name,Full": "a,b"})]


def test_header_is_cleaned() -> None:
    reader, _ = rows_of(stream('\ufeff"Id" , \'Name\' ,"  City "\n1,a,b\n'), id_column=None)
    assert reader.header == ["Id", "Name", "City"]


@pytest.mark.parametrize(
    ("header", "fragment"),
    [
        ("Id,Name,Id\n", "the same column name at positions 1, 3"),
        ("Id,,Name\n", "empty column name at position 2"),
    ],
)
def test_bad_header_is_a_file_error(header: str, fragment: str) -> None:
    with pytest.raises(ExtractError) as info:
        read_extract(stream(header + "1,2,3\n"))
    assert fragment in str(info.value)
    assert info.value.line == 1


def test_empty_file_is_an_error() -> None:
    with pytest.raises(ExtractError, match="empty"):
        read_extract(io.BytesIO(b""))


def test_missing_id_column_is_an_error() -> None:
    with pytest.raises(ExtractError, match="id column 'WorkerID' is not among the 2 columns"):
        read_extract(stream("Id,Name\n"), id_column="WorkerID")


@pytest.mark.parametrize(
    ("line", "delimiter"),
    [
        ("Id;Name;City,Town\n", ";"),
        ("Id\tName|x\tCity\n", "\t"),
        ("Id;Name,City\n", ","),  # a tie
        ("Id\n", ","),  # none
        ('"a;b;c"|d|e\n', "|"),  # quoted delimiters do not count
    ],
)
def test_sniff_picks_the_most_frequent_delimiter_outside_quotes(line: str, delimiter: str) -> None:
    assert sniff(line) == delimiter
