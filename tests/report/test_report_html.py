"""report.html: self-contained, escaped, its failure rows capped, drawn by a browser."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from connector.report import RecordRow
from connector.report_html import build_report_html
from connector.report_table import TABLE_SCRIPT, script_hash
from tests.report.sample_report import sample_input
from tests.sync.pngcheck import luminance_stats


def test_html_is_self_contained_and_escaped() -> None:
    page = build_report_html(sample_input(held_reason="leavers 600 > max 500 <i>"))
    # The one executable script is the record table's own, allowed by its hash alone.
    assert page.count("<script>") == 1
    assert f"<script>{TABLE_SCRIPT}</script>" in page
    assert f"script-src {script_hash()}" in page
    assert "alert(1)</script>" not in page
    assert "hr_&lt;script&gt;alert(1)&lt;/script&gt;.csv" in page
    assert "userPrincipalName &lt;b&gt;already&lt;/b&gt; exists" in page
    assert "leavers 600 &gt; max 500 &lt;i&gt;" in page
    for external in ("src=", "<link", "url(", "@import", 'href="http', 'href="/'):
        assert external not in page
    assert "<svg" in page
    assert "connector runs approve employees-3f2a9c1d" in page


def test_html_caps_failure_rows() -> None:
    many = [RecordRow(f"F{i}", "joiner", "failed", error_code="X") for i in range(30)]
    page = build_report_html(sample_input(records=many, rejected=[]), max_failure_rows=10)
    assert page.count("<code>X</code>") == 10
    assert "20 more in failures.csv" in page


CHROMIUM_HELP = (
    "headless Chromium is needed for the report screenshot test: "
    "run `apt-get install chromium` (as root) or `make browser`, then re-run the tests"
)


@pytest.mark.browser
def test_html_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.fail(CHROMIUM_HELP)
    page = tmp_path / "report.html"
    page.write_text(
        build_report_html(sample_input(held_reason="leavers 6 (12 %) over 10 %")), "utf-8"
    )
    png = tmp_path / "shot.png"
    blank_page = tmp_path / "blank.html"
    blank_page.write_text("<!DOCTYPE html><html><body></body></html>", "utf-8")
    blank_png = tmp_path / "blank.png"

    def shoot(src: Path, dst: Path) -> None:
        with tempfile.TemporaryDirectory() as profile:
            cmd = [
                browser,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={profile}",
                f"--screenshot={dst}",
                "--window-size=1200,900",
                "--hide-scrollbars",
                src.as_uri(),
            ]
            env = {**os.environ, "HOME": profile}
            proc = subprocess.run(cmd, capture_output=True, timeout=60, env=env, check=False)
            assert dst.exists(), f"chromium produced no screenshot: {proc.stderr.decode()[-2000:]}"

    shoot(page, png)
    shoot(blank_page, blank_png)
    data = png.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    variance, colours = luminance_stats(data)
    blank_variance, blank_colours = luminance_stats(blank_png.read_bytes())
    assert blank_variance < 1.0  # the checker itself sees a blank page as blank
    assert variance > 500.0, f"screenshot looks blank (luminance variance {variance:.1f})"
    assert colours > 20 > blank_colours
    keep = os.environ.get("REPORT_SCREENSHOT")
    if keep:
        shutil.copy(png, keep)
