"""The sync commands' exit codes and --open without a browser."""

from __future__ import annotations

import pytest


def test_cli_exits_non_zero_for_waiting_failed_or_blocked_runs() -> None:
    import typer

    from connector.cli.exits import EXIT_FAILED, EXIT_WAITING, exit_for
    from connector.sync.summary import RunSummary

    def summary(state: str, waiting: str | None = None) -> RunSummary:
        return RunSummary("r", "employees", "f.csv", state, waiting=waiting)

    exit_for([summary("uploaded"), summary("held")])
    for state, waiting, code in (
        ("uploading", "QuotaExhaustedError: spent", EXIT_WAITING),
        ("failed", None, EXIT_FAILED),
        ("blocked", None, EXIT_FAILED),
    ):
        with pytest.raises(typer.Exit) as info:
            exit_for([summary("uploaded"), summary(state, waiting)])
        assert info.value.exit_code == code


def test_open_without_a_browser_says_where_the_report_is(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import webbrowser

    from connector.cli.common import console as _console
    from connector.cli.render import open_in_browser as _open_in_browser

    opened: list[str] = []

    def no_browser(url: str) -> bool:
        opened.append(url)
        return False

    monkeypatch.setattr(webbrowser, "open", no_browser)
    blob = "https://acct.blob.core.windows.net/reports/employees/r/report.html"
    _open_in_browser(blob, _console())
    assert opened == [blob]  # a blob URL is opened as is, not wrapped in a file path
    assert f"no browser available; open {blob}" in capsys.readouterr().out
    _open_in_browser("/tmp/x/report.html", _console())
    assert opened[-1] == "file:///tmp/x/report.html"
