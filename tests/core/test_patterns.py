"""Mapping patterns run with a time bound per value; nested repeats are warned about."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from connector.errors import TransformError
from connector.mapping import load_mapping
from connector.patterns import MAX_TIMEOUTS, PATTERN_TIMEOUT, BoundedPattern, nested_quantifier
from connector.records import iter_records
from connector.validate import validate

#: catastrophic for Python's re; the regex package needs the time bound for the second
EVIL = "a" * 34 + "b"


@pytest.mark.parametrize(
    "pattern",
    [r"^(a+)+$", r"(a*)*b", r"^(\w+\s?)*$", r"((ab)+c?)+", r"(x{2,})+", r"(?:a+?)*", r"(a+){2,}"],
)
def test_nested_repeats_are_found(pattern: str) -> None:
    assert nested_quantifier(pattern)


@pytest.mark.parametrize(
    "pattern",
    [r"^\s+|\s+$", r"(ab)+", r"[(a+)]+", r"\(a+\)+", r"(a+)?", r"(a{2})+", r"(\d{3})-(\d+)", "{}"],
)
def test_plain_patterns_are_not_flagged(pattern: str) -> None:
    assert not nested_quantifier(pattern)


def test_the_issue_pattern_finishes_on_a_35_character_value() -> None:
    """^(a+)+$ ran over 20 s on Python's re; here it finishes (regex runs it linearly)."""
    rx = BoundedPattern(r"^(a+)+$", "x")
    started = time.monotonic()
    assert rx.sub(EVIL) == EVIL
    assert rx.sub("a" * 35) == "x"
    assert time.monotonic() - started < 5  # a hang guard, not a speed claim


def test_a_value_over_the_time_bound_is_a_transform_error_with_its_reason() -> None:
    rx = BoundedPattern(r"^(a|aa)+$", "x")
    with pytest.raises(TransformError) as info:
        rx.sub(EVIL)
    assert info.value.reason_code == PATTERN_TIMEOUT
    assert EVIL not in str(info.value)  # messages never echo the value
    assert rx.sub("aaaa") == "x"  # other values still run


def test_a_pattern_that_keeps_timing_out_rejects_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    rx = BoundedPattern(r"^(a|aa)+$", "x")
    monkeypatch.setattr(rx, "_timeouts", MAX_TIMEOUTS)
    started = time.monotonic()
    with pytest.raises(TransformError, match="no longer run") as info:
        rx.sub("aaaa")
    assert info.value.reason_code == PATTERN_TIMEOUT
    assert time.monotonic() - started < 1


@pytest.mark.parametrize(("pattern", "repl"), [("(", "x"), ("(a)", r"\2")])
def test_invalid_patterns_and_replacements_are_value_errors(pattern: str, repl: str) -> None:
    with pytest.raises(ValueError, match=r"replace\.(pattern|with)"):
        BoundedPattern(pattern, repl)


def _mapping(tmp_path: Path, pattern: str) -> Path:
    path = tmp_path / "m.yaml"
    path.write_text(
        "externalId: Id\n"
        "extract: {max_rejected_share: 0.5}\n"
        "core:\n"
        "  userName: Mail\n"
        "  active: {const: true}\n"
        "  displayName:\n"
        "    column: Name\n"
        "    transforms:\n"
        f"      - replace: {{pattern: '{pattern}', with: x}}\n",
        encoding="utf-8",
    )
    return path


def test_a_timed_out_row_is_rejected_with_its_line_and_the_rest_goes_on(tmp_path: Path) -> None:
    mapping = load_mapping(_mapping(tmp_path, "^(a|aa)+$"))
    extract = tmp_path / "x.csv"
    rows = [f"{i},u{i}@contoso.com,{'aaaa' if i % 10 else EVIL}" for i in range(1, 21)]
    extract.write_text("Id,Mail,Name\n" + "\n".join(rows) + "\n", encoding="utf-8")
    stream = iter_records(extract, mapping, label="x.csv")
    with stream:
        kept = [r.external_id for r in stream]
    assert len(kept) == 18
    assert [(r.line, r.external_id, r.reason_code) for r in stream.rejected] == [
        (11, "10", PATTERN_TIMEOUT),
        (21, "20", PATTERN_TIMEOUT),
    ]
    assert all(EVIL not in r.message for r in stream.rejected)


def test_validate_warns_about_a_nested_repeat_at_its_line(tmp_path: Path) -> None:
    path = _mapping(tmp_path, "^(a+)+$")
    report = validate(path)
    assert report.ok  # a warning, not an error
    [warning] = report.warnings
    assert warning.where == f"{path}:9"
    assert "repeats a group that holds a repeat" in warning.message
