"""The sources config: parsing, errors with lines, defaults, routing, and its JSON Schema."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from connector.config import (
    SCHEMA_PATH,
    load_sources,
    parse_sources,
    sources_json_schema,
)
from connector.errors import ConfigError
from connector.graph.endpoint import Cloud
from tests.config_texts import CONFIG, ENDPOINT


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
