"""Config values: durations in every spelling, and the Graph clouds with their alias."""

from __future__ import annotations

from datetime import timedelta

import pytest

from connector.config import (
    parse_sources,
    sources_json_schema,
)
from connector.config_values import parse_duration
from connector.errors import ConfigError
from connector.graph.endpoint import Cloud, ProvisioningEndpoint
from tests.config_texts import ENDPOINT, with_ids


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


@pytest.mark.parametrize("cloud", list(Cloud))
def test_every_graph_cloud_name_is_accepted(cloud: Cloud) -> None:
    src = parse_sources(with_ids(cloud.value)).source("a")
    assert src.cloud is cloud
    assert src.service_principal_id is not None
    assert src.job_id is not None
    built = ProvisioningEndpoint.build(src.service_principal_id, src.job_id, cloud=src.cloud)
    assert built.cloud is cloud
    assert built.bulk_upload_url.startswith(f"https://{cloud.host}/")


def test_old_dod_spelling_is_an_alias_and_default_is_global() -> None:
    assert parse_sources(with_ids("usgovdod")).source("a").cloud is Cloud.US_GOV_DOD
    assert parse_sources(with_ids("dod")).source("a").cloud is Cloud.US_GOV_DOD
    assert parse_sources(with_ids(None)).source("a").cloud is Cloud.GLOBAL


def test_unknown_cloud_is_refused_with_its_line() -> None:
    text = with_ids("mars")
    line = text.splitlines().index("    cloud: mars") + 1
    with pytest.raises(ConfigError, match=rf":{line}: sources\.0\.cloud: .*'dod'"):
        parse_sources(text)


def test_schema_lists_the_graph_clouds_and_the_alias() -> None:
    prop = sources_json_schema()["$defs"]["Source"]["properties"]["cloud"]
    assert set(prop["enum"]) == {c.value for c in Cloud} | {"usgovdod"}
    assert prop["default"] == "global"
