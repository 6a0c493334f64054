"""Fuzzing the sources config loader: whatever the YAML, the answer is a SourcesConfig or
a ConfigError; never a crash."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz.strategies import soup, yaml_bytes
from tests.fuzz.targets import holds

FUZZ = settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])

KEYS = [
    "sources", "name", "match", "prefix", "glob", "mapping", "service_principal_id", "job_id",
    "kind", "mode", "schedule", "thresholds", "max_changes", "max_changes_percent",
    "max_leavers", "max_leavers_percent", "min_row_ratio", "max_rejected_share",
    "extract_timestamp", "pattern", "format", "skew", "reconciliation", "deadline",
    "retry_unconfirmed", "daily_call_budget", "endpoint", "cloud", "leavers", "group", "sql",
    "rest", "ignore_attributes", "node",
]  # fmt: skip
WORDS = [
    "employees", "employees/", "m.yaml", "00000000-0000-0000-0000-00000000f022", "API2AAD.x",
    "full", "delta", "file", "sql", "rest", "5m", "1h", "P1D", "-1s", "10%", "global",
    "https://graph.microsoft.com", "http://127.0.0.1", "(?P<ts>\\d{8})", "%Y%m%d", "(",
    "*/5 * * * *", "@daily",
]  # fmt: skip
FRAGMENTS = [
    "sources:\n", "  - name: a\n", "    match: a/\n", "    mapping: m.yaml\n",
    "    job_id: J\n", "    thresholds: {max_changes: 5}\n", "&x ", "*x ", "{", "}", "[", "]",
    ": ", "- ", "\n", "  ", "'", '"', "#", "!!str ", "!!python/name:os.system ", "<<: ", "~",
    "\t", "\x00", "é", "1e400", "-1", "0o17",
]  # fmt: skip


@FUZZ
@given(yaml_bytes(KEYS, WORDS))
def test_config_trees_give_a_config_or_a_config_error(data: bytes) -> None:
    holds("sources", data)


@FUZZ
@given(soup(FRAGMENTS))
def test_yaml_soup_gives_a_config_or_a_config_error(data: bytes) -> None:
    holds("sources", data)


@FUZZ
@given(st.binary(max_size=200))
def test_any_bytes_give_a_config_or_a_config_error(data: bytes) -> None:
    holds("sources", data)
