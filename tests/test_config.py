"""The sources config: parsing, errors with lines, defaults, routing, and its JSON Schema."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from connector.config import (
    SCHEMA_PATH,
    load_sources,
    parse_duration,
    parse_sources,
    sources_json_schema,
)
from connector.errors import ConfigError
from connector.graph.endpoint import Cloud, ProvisioningEndpoint

ENDPOINT = (
    "https://graph.microsoft.com/beta/servicePrincipals/11111111-2222-3333-4444-555555555555"
    "/synchronization/jobs/API2AAD.0123456789abcdef0123456789abcdef.11111111-2222-3333-4444-555555555555"
    "/bulkUpload"
)

CONFIG = f"""\
daily_call_budget: 6000
reconciliation:
  deadline: 90m
  skew: 2m
sources:
  - name: employees
    match: employees/
    mapping: mappings/employees.yaml
    endpoint: {ENDPOINT}
    thresholds:
      max_leavers: 100
    ignore_attributes: [extractedAt]
    extract_timestamp:
      pattern: '_(?P<ts>\\d{{8}}T\\d{{6}})\\.csv$'
      format: '%Y%m%dT%H%M%S'
  - name: contractors
    match: {{prefix: vendors/, glob: 'vendors/*.csv'}}
    mapping:
      externalId: ContractorId
    service_principal_id: 11111111-2222-3333-4444-555555555555
    job_id: API2AD.x.y
    cloud: usgov
    mode: delta
    leavers: ignore
    retry_unconfirmed: true
"""


def test_full_config_with_defaults(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "sources.yaml"
    path.parent.mkdir()
    path.write_text(CONFIG, encoding="utf-8")
    cfg = load_sources(path)
    assert cfg.path == path
    assert cfg.daily_call_budget == 6000
    assert cfg.reconciliation.deadline == timedelta(minutes=90)
    assert cfg.reconciliation.skew == timedelta(minutes=2)

    emp = cfg.source("employees")
    assert emp.mapping_path == tmp_path / "conf" / "mappings" / "employees.yaml"
    assert emp.mode == "full"
    assert emp.leavers == "disable"
    assert emp.thresholds.max_leavers == 100
    assert emp.thresholds.max_leavers_percent == 10
    assert emp.thresholds.min_row_ratio == 0.5
    assert emp.thresholds.max_rejected_share == 0.05
    assert emp.thresholds.max_changes is None
    assert emp.thresholds.max_changes_percent == 25
    assert emp.cloud is Cloud.GLOBAL  # from the endpoint's host
    assert emp.ignore_attributes == ("extractedAt",)
    assert emp.retry_unconfirmed is False

    con = cfg.source("contractors")
    assert con.mapping_path is None
    assert con.mapping == {"externalId": "ContractorId"}
    assert con.cloud is Cloud.US_GOV
    assert con.mode == "delta"
    assert con.leavers == "ignore"
    assert con.retry_unconfirmed is True


def test_global_defaults() -> None:
    cfg = parse_sources(
        f"sources:\n  - name: a\n    match: a/\n    mapping: m.yaml\n    endpoint: {ENDPOINT}\n"
    )
    assert cfg.daily_call_budget == 2000
    assert cfg.reconciliation.deadline == timedelta(hours=2)
    assert cfg.reconciliation.skew == timedelta(minutes=5)


def test_unknown_keys_name_the_key_and_line() -> None:
    text = CONFIG.replace("      max_leavers: 100\n", "      max_leaver: 100\n").replace(
        "    retry_unconfirmed: true\n", "    retry_unconfirmed: true\n    colour: blue\n"
    )
    with pytest.raises(ConfigError) as err:
        parse_sources(text)
    msg = str(err.value)
    lines = text.splitlines()
    leaver_line = next(i for i, ln in enumerate(lines, 1) if "max_leaver:" in ln)
    colour_line = next(i for i, ln in enumerate(lines, 1) if "colour:" in ln)
    assert f":{leaver_line}: sources.0.thresholds.max_leaver: unknown key 'max_leaver'" in msg
    assert f":{colour_line}: sources.1.colour: unknown key 'colour'" in msg
    assert "Tuple should have" not in msg


def test_unknown_top_level_key() -> None:
    with pytest.raises(ConfigError, match=r":1: daily_budget: unknown key 'daily_budget'"):
        parse_sources("daily_budget: 3\nsources: []\n")


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


def test_names_and_match_rules_must_be_distinct() -> None:
    one = f"  - name: a\n    match: a/\n    mapping: m.yaml\n    endpoint: {ENDPOINT}\n"
    with pytest.raises(ConfigError, match="both named"):
        parse_sources("sources:\n" + one + one)
    other = one.replace("name: a", "name: b")
    with pytest.raises(ConfigError, match="match the same files"):
        parse_sources("sources:\n" + one + other)
    with pytest.raises(ConfigError, match=r"not allowed|pattern"):
        parse_sources("sources:\n" + one.replace("name: a", "name: ../x"))


def test_not_yaml_and_not_a_mapping() -> None:
    with pytest.raises(ConfigError, match="not valid YAML"):
        parse_sources("sources: [\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        parse_sources("- a\n")
    with pytest.raises(ConfigError, match="cannot read"):
        load_sources("/nonexistent/sources.yaml")


def test_routing_files_to_sources() -> None:
    cfg = parse_sources(CONFIG)
    assert cfg.source_for("employees/hr_20260101T020000.csv") is cfg.source("employees")
    assert cfg.source_for("vendors/list.csv") is cfg.source("contractors")
    assert cfg.source_for("vendors/list.txt") is None
    assert cfg.source_for("other/x.csv") is None
    with pytest.raises(ConfigError, match=r"no source named 'x'.*employees, contractors"):
        cfg.source("x")


def test_overlapping_rules_are_refused_at_routing_time() -> None:
    text = (
        "sources:\n"
        f"  - {{name: a, match: hr/, mapping: m.yaml, endpoint: '{ENDPOINT}'}}\n"
        f"  - {{name: b, match: 'hr/*.csv', mapping: m.yaml, endpoint: '{ENDPOINT}'}}\n"
    )
    cfg = parse_sources(text)
    assert cfg.source_for("hr/x.txt") is cfg.source("a")
    with pytest.raises(ConfigError, match="several sources"):
        cfg.source_for("hr/x.csv")


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


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("2h", 7200), ("30m", 1800), ("90s", 90), ("1.5h", 5400), ("500ms", 0.5), (120, 120)],
)
def test_durations(value: object, seconds: float) -> None:
    assert parse_duration(value) == timedelta(seconds=seconds)


def test_iso_duration_and_bad_duration() -> None:
    base = f"sources:\n  - {{name: a, match: a/, mapping: m.yaml, endpoint: '{ENDPOINT}'}}\n"
    cfg = parse_sources("reconciliation: {deadline: PT3H}\n" + base)
    assert cfg.reconciliation.deadline == timedelta(hours=3)
    with pytest.raises(ConfigError, match="deadline"):
        parse_sources("reconciliation: {deadline: soon}\n" + base)


def test_json_schema_file_is_current() -> None:
    on_disk = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    assert on_disk == sources_json_schema(), (
        "connector/schemas/sources.schema.json is stale: run `python -m connector.config`"
    )


def test_json_schema_forbids_unknown_keys() -> None:
    schema = sources_json_schema()
    assert schema["additionalProperties"] is False
    assert schema["$defs"]["Source"]["additionalProperties"] is False
    assert set(schema["$defs"]["Source"]["required"]) == {"name", "mapping"}


def test_json_schema_requires_the_block_of_each_kind() -> None:
    rules = sources_json_schema()["$defs"]["Source"]["allOf"]
    required = {
        tuple(r["if"]["properties"]["kind"].get("enum", [])): r["then"]["required"] for r in rules
    }
    assert required == {("file",): ["match"], ("sql",): ["sql"], ("rest",): ["rest"]}


def test_json_schema_accepts_the_shorthands() -> None:
    defs = sources_json_schema()["$defs"]
    match_types = {alt["type"] for alt in defs["Source"]["properties"]["match"]["anyOf"]}
    assert match_types == {"string", "object"}
    deadline = defs["Reconciliation"]["properties"]["deadline"]["anyOf"]
    assert {alt["type"] for alt in deadline} == {"string", "number"}


# -- clouds: the Graph client's vocabulary -------------------------------------------------

IDS = (
    "    service_principal_id: 11111111-2222-3333-4444-555555555555\n"
    "    job_id: API2AAD.0123456789abcdef0123456789abcdef.11111111-2222-3333-4444-555555555555\n"
)


def _with_ids(cloud: str | None) -> str:
    text = "sources:\n  - name: a\n    match: a/\n    mapping: m.yaml\n" + IDS
    return text + (f"    cloud: {cloud}\n" if cloud is not None else "")


@pytest.mark.parametrize("cloud", list(Cloud))
def test_every_graph_cloud_name_is_accepted(cloud: Cloud) -> None:
    src = parse_sources(_with_ids(cloud.value)).source("a")
    assert src.cloud is cloud
    assert src.service_principal_id is not None
    assert src.job_id is not None
    built = ProvisioningEndpoint.build(src.service_principal_id, src.job_id, cloud=src.cloud)
    assert built.cloud is cloud
    assert built.bulk_upload_url.startswith(f"https://{cloud.host}/")


def test_old_dod_spelling_is_an_alias_and_default_is_global() -> None:
    assert parse_sources(_with_ids("usgovdod")).source("a").cloud is Cloud.US_GOV_DOD
    assert parse_sources(_with_ids("dod")).source("a").cloud is Cloud.US_GOV_DOD
    assert parse_sources(_with_ids(None)).source("a").cloud is Cloud.GLOBAL


def test_unknown_cloud_is_refused_with_its_line() -> None:
    text = _with_ids("mars")
    line = text.splitlines().index("    cloud: mars") + 1
    with pytest.raises(ConfigError, match=rf":{line}: sources\.0\.cloud: .*'dod'"):
        parse_sources(text)


def test_cloud_follows_a_national_endpoint_and_must_agree_with_it() -> None:
    gov = ENDPOINT.replace("graph.microsoft.com", "dod-graph.microsoft.us")
    base = f"sources:\n  - name: a\n    match: a/\n    mapping: m.yaml\n    endpoint: {gov}\n"
    assert parse_sources(base).source("a").cloud is Cloud.US_GOV_DOD
    assert parse_sources(base + "    cloud: usgovdod\n").source("a").cloud is Cloud.US_GOV_DOD
    with pytest.raises(ConfigError, match=r"cloud 'usgov' does not match.*dod-graph"):
        parse_sources(base + "    cloud: usgov\n")


def test_schema_lists_the_graph_clouds_and_the_alias() -> None:
    prop = sources_json_schema()["$defs"]["Source"]["properties"]["cloud"]
    assert set(prop["enum"]) == {c.value for c in Cloud} | {"usgovdod"}
    assert prop["default"] == "global"


@pytest.mark.parametrize("attr", ["active", "externalId"])
def test_active_and_external_id_cannot_be_ignored(attr: str) -> None:
    text = _with_ids(None) + f"    ignore_attributes: [title, {attr}]\n"
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
