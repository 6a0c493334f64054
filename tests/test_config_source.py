"""A source's settings: target, extract time, ignored attributes and expected cadence."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from connector.config import (
    parse_sources,
)
from connector.errors import ConfigError
from connector.graph.endpoint import Cloud
from tests.config_texts import CONFIG, ENDPOINT, with_ids


@pytest.mark.parametrize(
    ("snippet", "expected"),
    [
        ("    endpoint: https://example.com/x\n", "Provisioning API endpoint"),
        (f"    endpoint: {ENDPOINT}\n    job_id: j\n", "not both"),
        ("", "needs endpoint"),
        (f"    endpoint: {ENDPOINT}\n    mode: mirror\n", "mode"),
        (f"    endpoint: {ENDPOINT}\n    thresholds: {{min_row_ratio: 2}}\n", "min_row_ratio"),
        (
            f"    endpoint: {ENDPOINT}\n"
            "    extract_timestamp: {pattern: '(\\d+)', format: '%Y'}\n",
            "named group",
        ),
    ],
)
def test_invalid_sources(snippet: str, expected: str) -> None:
    text = "sources:\n  - name: a\n    match: a/\n    mapping: m.yaml\n" + snippet
    with pytest.raises(ConfigError, match=expected):
        parse_sources(text)


def test_extract_time_from_name_else_upload_time() -> None:
    emp = parse_sources(CONFIG).source("employees")
    uploaded = datetime(2026, 5, 5, 12, 0, tzinfo=UTC)
    assert emp.extract_time("employees/hr_20260101T020304.csv", uploaded) == datetime(
        2026, 1, 1, 2, 3, 4, tzinfo=UTC
    )
    assert emp.extract_time("employees/hr_latest.csv", uploaded) == uploaded
    assert emp.extract_time("employees/hr_20261399T000000.csv", uploaded) == uploaded
    con = parse_sources(CONFIG).source("contractors")
    assert con.extract_time("vendors/latest.csv", uploaded) == uploaded
    # Without a pattern, a date in the name is still the extract time (the default rules).
    assert con.extract_time("vendors/20260101.csv", uploaded) == datetime(2026, 1, 1, tzinfo=UTC)


def test_cloud_follows_a_national_endpoint_and_must_agree_with_it() -> None:
    gov = ENDPOINT.replace("graph.microsoft.com", "dod-graph.microsoft.us")
    base = f"sources:\n  - name: a\n    match: a/\n    mapping: m.yaml\n    endpoint: {gov}\n"
    assert parse_sources(base).source("a").cloud is Cloud.US_GOV_DOD
    assert parse_sources(base + "    cloud: usgovdod\n").source("a").cloud is Cloud.US_GOV_DOD
    with pytest.raises(ConfigError, match=r"cloud 'usgov' does not match.*dod-graph"):
        parse_sources(base + "    cloud: usgov\n")


@pytest.mark.parametrize("attr", ["active", "externalId"])
def test_active_and_external_id_cannot_be_ignored(attr: str) -> None:
    text = with_ids(None) + f"    ignore_attributes: [title, {attr}]\n"
    with pytest.raises(ConfigError, match=f"{attr} cannot be ignored"):
        parse_sources(text)


def _expecting(every: str) -> str:
    return (
        f"sources:\n  - {{name: a, match: a/, mapping: m.yaml, endpoint: '{ENDPOINT}',"
        f" expect_every: {every}}}\n"
    )


@pytest.mark.parametrize(("value", "hours"), [("24h", 24), ("36h", 36), ("7d", 168), ("PT12H", 12)])
def test_expect_every_reads_a_duration(value: str, hours: float) -> None:
    text = _expecting(value)
    assert parse_sources(text).sources[0].expect_every == timedelta(hours=hours)


def test_expect_every_is_optional() -> None:
    text = f"sources:\n  - {{name: a, match: a/, mapping: m.yaml, endpoint: '{ENDPOINT}'}}\n"
    assert parse_sources(text).sources[0].expect_every is None


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("daily", r":2: sources\.0\.expect_every: .*duration"),
        ("24 hours", r":2: sources\.0\.expect_every: .*duration"),
        ("0h", r":2: sources\.0\.expect_every: .*at least 1m"),
        ("-5", r":2: sources\.0\.expect_every: .*at least 1m"),
        ("true", r":2: sources\.0\.expect_every: "),
    ],
)
def test_expect_every_rejects_bad_durations_with_a_clear_error(value: str, message: str) -> None:
    text = _expecting(value)
    with pytest.raises(ConfigError, match=message) as err:
        parse_sources(text)
    assert str(err.value).count("expect_every:") == 1  # one problem, named once
