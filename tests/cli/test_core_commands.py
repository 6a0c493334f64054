"""The core CLI commands through Typer's runner, and exit codes through the console script."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
import typer
from typer.testing import CliRunner

from connector.cli import core, preview
from connector.cli.app import build_app
from connector.errors import ExtractError, RejectedShareExceededError
from connector.extract import ExtractReader
from tests.core.helpers import DEFAULT_MAPPING, GOLDEN, HR_EXTRACT, ROOT

runner = CliRunner()


def app() -> typer.Typer:
    a = typer.Typer(rich_markup_mode=None)  # as connector.cli.app builds it
    core.register(a)
    return a


def test_commands_are_registered() -> None:
    result = runner.invoke(app(), ["--help"])
    assert result.exit_code == 0
    for name in ("validate", "preview", "sample"):
        assert name in result.output


def test_validate_exit_codes(tmp_path: Path) -> None:
    ok = runner.invoke(app(), ["validate", "--mapping", str(DEFAULT_MAPPING), str(HR_EXTRACT)])
    assert ok.exit_code == 0, ok.output
    assert "0 error(s), 0 warning(s), 60 rows checked" in ok.output
    bad = tmp_path / "m.yaml"
    bad.write_text("externalId: EmployeeId\ncore: {usrName: X}\n", encoding="utf-8")
    res = runner.invoke(app(), ["validate", "--mapping", str(bad), str(HR_EXTRACT), "--json"])
    assert res.exit_code == 1
    report = orjson.loads(res.output)
    assert report["ok"] is False
    assert report["problems"][0]["where"] == f"{bad}:2"
    missing = runner.invoke(app(), ["validate", "--mapping", str(tmp_path / "nope.yaml")])
    assert missing.exit_code == 2
    assert runner.invoke(app(), ["validate", str(HR_EXTRACT)]).exit_code == 2  # --mapping needed


def test_preview_writes_payloads_and_summary(tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = runner.invoke(
        app(),
        [
            "preview",
            "--mapping",
            str(DEFAULT_MAPPING),
            str(HR_EXTRACT),
            "--out",
            str(out),
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    summary = orjson.loads(res.output)
    assert summary["rows_read"] == 60
    assert summary["requests"] == 2
    assert summary["bytes"] == sum(p.stat().st_size for p in out.glob("bulk-*.json"))
    assert (out / "bulk-00001.json").read_bytes() == (
        GOLDEN / "default" / "bulk-00001.json"
    ).read_bytes()
    text = runner.invoke(
        app(), ["preview", "-m", str(DEFAULT_MAPPING), str(HR_EXTRACT), "-o", str(out)]
    )
    assert "rows_accepted: 60" in text.output
    assert "\x1b[" not in text.output  # no progress bar or colours off a terminal


def test_preview_reports_rejections_and_cap(tmp_path: Path) -> None:
    extract = tmp_path / "x.csv"
    args = ["sample", "--rows", "100", "--seed", "2", "--out", str(extract)]
    res = runner.invoke(app(), [*args, "--bad-dates", "3", "--duplicate-ids", "1"])
    assert res.exit_code == 0, res.output
    out = tmp_path / "out"
    preview = ["preview", "-m", str(DEFAULT_MAPPING), str(extract), "-o", str(out), "--json"]
    res = runner.invoke(app(), preview)
    assert res.exit_code == 0  # 3 bad dates + both rows of a duplicate = 5 %, the cap itself
    summary = orjson.loads(res.stdout)
    assert summary["rejected_by_reason"] == {"duplicate_external_id": 2, "invalid_value": 3}
    assert summary["rows_accepted"] == 95
    with (out / "rejected.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [r["reason"] for r in rows].count("invalid_value") == 3
    assert list(rows[0]) == ["line", "externalId", "reason", "message"]
    # one more bad row puts the file over the cap: exit 1, the summary says why
    res = runner.invoke(app(), [*args, "--bad-dates", "4", "--duplicate-ids", "1"])
    res = runner.invoke(app(), preview)
    assert res.exit_code == 1
    assert "over the cap of 5.0%" in orjson.loads(res.stdout)["error"]


def test_sample_and_churn(tmp_path: Path) -> None:
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    res = runner.invoke(
        app(), ["sample", "--rows", "50", "--seed", "1", "--out", str(a), "--layout", "csv2scim"]
    )
    assert res.exit_code == 0
    assert a.read_text(encoding="utf-8").startswith("WorkerID,WorkerStatus,")
    res = runner.invoke(app(), ["sample", "--from", str(a), "--churn", "0.3", "--out", str(b)])
    assert res.exit_code == 0, res.output
    assert "hires 5" in res.output
    bad = runner.invoke(app(), ["sample", "--out", str(a), "--layout", "sap"])
    assert bad.exit_code == 2


def _main(args: list[str]) -> subprocess.CompletedProcess[str]:
    code = f"from connector.cli import main; raise SystemExit(main({args!r}))"
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False
    )


def test_console_script_exit_codes(tmp_path: Path) -> None:
    assert _main(["validate", "--mapping", str(DEFAULT_MAPPING), str(HR_EXTRACT)]).returncode == 0
    bad = tmp_path / "m.yaml"
    bad.write_text("externalId: Id\n", encoding="utf-8")
    assert _main(["validate", "--mapping", str(bad), str(HR_EXTRACT)]).returncode == 1
    assert _main(["validate", "--bogus"]).returncode == 2


def test_preview_shows_mapping_warnings_on_stderr_and_in_json(tmp_path: Path) -> None:
    m = tmp_path / "m.yaml"
    m.write_text(
        DEFAULT_MAPPING.read_text(encoding="utf-8").replace(
            "      type: work\n      primary: true", "      type: home\n      primary: true"
        ),
        encoding="utf-8",
    )
    out = tmp_path / "out"
    res = runner.invoke(app(), ["preview", "-m", str(m), str(HR_EXTRACT), "-o", str(out)])
    assert res.exit_code == 0, res.output
    [line] = [x for x in res.stderr.splitlines() if x.startswith("warning:")]
    assert f"{m}:" in line
    assert "emails type 'home'" in line
    assert "warning" not in res.stdout
    res = runner.invoke(app(), ["preview", "-m", str(m), str(HR_EXTRACT), "-o", str(out), "--json"])
    [warning] = orjson.loads(res.stdout)["warnings"]
    assert "emails type 'home'" in warning
    clean = runner.invoke(
        app(), ["preview", "-m", str(DEFAULT_MAPPING), str(HR_EXTRACT), "-o", str(out), "--json"]
    )
    assert orjson.loads(clean.stdout)["warnings"] == []
    assert "warning" not in clean.stderr


def _given_faults(tmp_path: Path) -> Path:
    """40 rows: 2 wrong field counts, 2 ids on 2 rows each, 2 bad dates (over the 5 % cap)."""
    extract = tmp_path / "refused.csv"
    res = runner.invoke(
        app(),
        ["sample", "--rows", "40", "--seed", "3", "--out", str(extract), "--bad-field-count",
         "2", "--duplicate-ids", "2", "--bad-dates", "2"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    return extract


def _rejected_lines(out: Path) -> list[int]:
    with (out / "rejected.csv").open(encoding="utf-8") as f:
        return [int(r["line"]) for r in csv.DictReader(f)]


def test_preview_of_a_refused_file_lists_every_rejected_row(tmp_path: Path) -> None:
    """The cap refuses this file before mapping; rejected.csv still matches validate."""
    extract = _given_faults(tmp_path)
    check = runner.invoke(
        app(), ["validate", "-m", str(DEFAULT_MAPPING), str(extract), "--rows", "0", "--json"]
    )
    found = sorted(
        int(p["where"].rsplit(":", 1)[1])
        for p in orjson.loads(check.stdout)["problems"]
        if p["where"].startswith(f"{extract}:")
    )
    assert len(found) == 8  # 4 duplicate rows, 2 field counts, 2 bad dates
    out = tmp_path / "out"
    res = runner.invoke(
        app(), ["preview", "-m", str(DEFAULT_MAPPING), str(extract), "-o", str(out), "--json"]
    )
    assert res.exit_code == 1
    summary = orjson.loads(res.stdout)
    assert summary["refused"] is True
    assert summary["rows_rejected"] == 8
    assert summary["rejected_by_reason"] == {
        "duplicate_external_id": 4, "field_count": 2, "invalid_value": 2,
    }  # fmt: skip
    assert summary["rejected_not_listed"] == 0
    assert sorted(_rejected_lines(out)) == found
    assert "file refused: 8 of 40 rows rejected" in summary["error"]
    assert "file refused" in res.stderr
    text = runner.invoke(
        app(), ["preview", "-m", str(DEFAULT_MAPPING), str(extract), "-o", str(out)]
    )
    assert "rows_rejected: 8" in text.stdout
    assert "refused: yes" in text.stdout


def test_preview_falls_back_to_the_refusal_list(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the full listing pass cannot run, the cap error's own rows and counts are used."""
    extract = _given_faults(tmp_path)
    real = preview.iter_records

    def listing_pass_fails(*args: Any, **kwargs: Any) -> Any:
        if "profile" in kwargs:  # the pass with the cap lifted, listing every rejected row
            raise ExtractError("gone", path=str(extract))
        return real(*args, **kwargs)

    monkeypatch.setattr(preview, "iter_records", listing_pass_fails)
    monkeypatch.setattr(RejectedShareExceededError, "MAX_LISTED", 4)
    summary = preview.run_preview(DEFAULT_MAPPING, extract, tmp_path / "out")
    assert summary.refused
    assert summary.to_dict()["rows_rejected"] == 8  # the refusal came after the last row
    assert summary.rejected_not_listed == 4
    assert len(_rejected_lines(tmp_path / "out")) == 4
    assert summary.error is not None
    assert "lists the first 4 (4 more)" in summary.error


@pytest.mark.parametrize(
    "extra",
    [
        ["--rows", "5"],
        ["--layout", "csv2scim"],
        ["--bad-field-count", "1"],
        ["--duplicate-ids", "1"],
        ["--bad-dates", "1"],
        ["--duplicate-upn"],
        ["--unresolved-manager"],
        ["--rows", "1000"],  # the default, but typed: still not what --from does
    ],
)
def test_sample_from_refuses_options_it_would_ignore(tmp_path: Path, extra: list[str]) -> None:
    prev, nxt = tmp_path / "a.csv", tmp_path / "b.csv"
    assert runner.invoke(app(), ["sample", "--rows", "20", "--out", str(prev)]).exit_code == 0
    res = runner.invoke(app(), ["sample", "--from", str(prev), "--out", str(nxt), *extra])
    assert res.exit_code == 2, res.output
    assert f"{extra[0]} cannot be combined with --from" in res.output
    assert not nxt.exists()


def test_sample_churn_needs_from(tmp_path: Path) -> None:
    out = tmp_path / "a.csv"
    res = runner.invoke(app(), ["sample", "--out", str(out), "--churn", "0.2"])
    assert res.exit_code == 2
    assert "--churn only applies with --from" in res.output
    assert not out.exists()


@pytest.mark.parametrize("codec", ["rot13", "base64", "hex", "zlib_codec"])
def test_a_non_text_encoding_is_one_line_naming_key_and_file(tmp_path: Path, codec: str) -> None:
    """validate exits 1 (the mapping has problems); preview 2 (its --mapping is unusable)."""
    m = tmp_path / "m.yaml"
    text = DEFAULT_MAPPING.read_text(encoding="utf-8")
    m.write_text(text.replace("encoding: utf-8", f"encoding: {codec}"), encoding="utf-8")
    line = text[: text.index("encoding: utf-8")].count("\n") + 1
    checked = runner.invoke(app(), ["validate", "--mapping", str(m), str(HR_EXTRACT)])
    assert checked.exit_code == 1, checked.output
    assert f"{m}:{line}: error: extract.encoding: {codec!r} is not a text encoding" in (
        checked.output
    )
    shown = runner.invoke(app(), ["preview", "-m", str(m), str(HR_EXTRACT), "-o", str(tmp_path)])
    assert shown.exit_code == 2, shown.output
    assert shown.stderr.splitlines() == [
        f"error: {m}:{line}: extract.encoding: {codec!r} is not a text encoding"
        " (e.g. utf-8, cp1252, latin-1)"
    ]
    assert "Traceback" not in shown.output + checked.output


def test_configuration_errors_are_usage_errors_in_one_line_each() -> None:
    from connector.cli.common import EXIT_USAGE, config_error_lines, exit_code_for
    from connector.errors import ConfigError, MappingError

    assert exit_code_for(MappingError("m.yaml has 1 problem(s)", ["m.yaml:3: bad"])) == EXIT_USAGE
    assert exit_code_for(ConfigError("sources.yaml:2: bad")) == 2
    assert exit_code_for(ExtractError("x.csv: bad")) == 1
    lines = config_error_lines(
        MappingError("m.yaml has 2 problem(s)", ["m.yaml:3: a", "m.yaml:4: b"])
    )
    assert lines == ["error: m.yaml:3: a", "error: m.yaml:4: b"]
    assert config_error_lines(ConfigError("s.yaml: not\n  valid")) == ["error: s.yaml: not valid"]


def test_preview_with_a_mapping_nested_too_deep_exits_2_naming_the_file(tmp_path: Path) -> None:
    m = tmp_path / "deep.yaml"
    m.write_text(
        "externalId: Id\ncore:\n  userName: " + "[" * 500 + "]" * 500 + "\n", encoding="utf-8"
    )
    res = runner.invoke(
        app(), ["preview", "-m", str(m), str(HR_EXTRACT), "-o", str(tmp_path / "o")]
    )
    assert res.exit_code == 2
    assert res.stderr.splitlines() == [f"error: {m}:3: nested deeper than 64 levels"]


def _lenient_mapping(tmp_path: Path) -> Path:
    text = DEFAULT_MAPPING.read_text(encoding="utf-8")
    assert "max_rejected_share: 0.05" in text
    path = tmp_path / "lenient.yaml"
    path.write_text(text.replace("max_rejected_share: 0.05", "max_rejected_share: 1.0"), "utf-8")
    return path


def test_preview_reads_a_file_without_repeated_ids_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_id_pass(*args: Any) -> Any:
        raise AssertionError("the id column was read on its own")

    monkeypatch.setattr(ExtractReader, "_duplicate_hashes", no_id_pass)
    summary = preview.run_preview(DEFAULT_MAPPING, HR_EXTRACT, tmp_path / "out")
    assert summary.error is None
    assert summary.operations == summary.rows_accepted > 0


def test_preview_of_repeated_ids_drops_the_first_reads_payloads(tmp_path: Path) -> None:
    """A repeat found after the last row: the file is read again; no payload of the first stays."""
    rows = HR_EXTRACT.read_text(encoding="utf-8").splitlines()
    header, first, second = rows[0], rows[1], rows[2]
    repeat = first.split(",", 1)[0] + "," + second.split(",", 1)[1]
    extract = tmp_path / "repeats.csv"
    extract.write_text("\n".join([header, first, second, repeat, *rows[3:6]]) + "\n", "utf-8")
    out = tmp_path / "out"
    summary = preview.run_preview(_lenient_mapping(tmp_path), extract, out, max_bytes=1024 * 2)
    assert summary.rejected_by_reason == {"duplicate_external_id": 2}
    assert summary.operations == summary.requests == 4  # one operation per request here
    assert sorted(p.name for p in out.glob("bulk-*.json")) == [
        f"bulk-{n:05d}.json" for n in range(1, 5)
    ]
    assert _rejected_lines(out) == [2, 4]


def test_core_commands_start_without_the_other_command_modules() -> None:
    from connector.cli.app import CORE_COMMANDS

    alone = build_app("preview")
    assert {c.name for c in alone.registered_commands} == CORE_COMMANDS
    probe = (
        "import sys\nfrom connector.cli import main\n"
        "code = main(['preview', '--help'])\n"
        "print(code, sorted(m for m in sys.modules if m.startswith(('connector.cli.', 'httpx'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout.splitlines()[-1]
    assert out.startswith("0 ")
    for heavy in ("connector.cli.sync", "connector.cli.graph", "httpx"):
        assert f"'{heavy}'" not in out
    every = {c.name for c in build_app().registered_commands}
    assert every > CORE_COMMANDS
    assert every >= {"sync", "status", "import-psd1", "emulator"}


@pytest.mark.parametrize(
    ("tail", "fragment"),
    [(b'9999,"Active\n', "unterminated quote"), (b"9999,Act\xefve\n", "cannot decode")],
)
def test_preview_of_a_file_refused_late_leaves_no_payload(
    tmp_path: Path, tail: bytes, fragment: str
) -> None:
    """Read once, the file's error comes after payloads were written: none of them stays."""
    rows = HR_EXTRACT.read_bytes().splitlines(keepends=True)
    extract = tmp_path / "late.csv"
    extract.write_bytes(b"".join(rows) + tail)
    out = tmp_path / "out"
    summary = preview.run_preview(DEFAULT_MAPPING, extract, out, max_bytes=2048)
    assert summary.error is not None
    assert fragment in summary.error
    assert list(out.glob("bulk-*.json")) == []
