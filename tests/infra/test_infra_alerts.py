"""Alert rules exist for failed records, held runs, job quarantine and function failures,
and they match the log lines connector/functions/telemetry.py really writes."""

from __future__ import annotations

import logging
import re

import bicep_model as bm
import pytest
from infra_contract import ALERT_EVENT_PROPERTY, ALERT_EVENTS, ALERT_METRICS, INFRA, ROOT

ALERTS = bm.module_path("alerts.bicep")
QUERY_RULE = "Microsoft.Insights/scheduledQueryRules"


def _rules() -> dict[str, bm.Resource]:
    """Log alert rules by name suffix (the part after '${namePrefix}-')."""
    out = {}
    for rule in bm.resources_of_type(ALERTS, QUERY_RULE):
        name = rule.body["name"]
        assert name.startswith("${namePrefix}-"), name
        out[name.removeprefix("${namePrefix}-")] = rule
    return out


def _query(rule: bm.Resource) -> str:
    """The rule's KQL with the file's ``${reportLinkKql}`` variable written out."""
    (criterion,) = rule.body["properties"]["criteria"]["allOf"]
    query: str = criterion["query"]
    return query.replace("${reportLinkKql}", bm.variable(ALERTS, "reportLinkKql"))


def _event_clause(event: str) -> str:
    return (
        f'tostring(customDimensions["{ALERT_EVENT_PROPERTY}"]) == "{event}"'
        f' or message startswith "connector {event} "'
    )


def test_action_group_mails_the_owner() -> None:
    group = bm.one(ALERTS, "Microsoft.Insights/actionGroups")
    props = group.body["properties"]
    assert props["enabled"] is True
    assert len(props["groupShortName"]) <= 12
    (receiver,) = props["emailReceivers"]
    assert receiver["emailAddress"] == "alertEmail"
    body, _ = bm.module(INFRA / "main.bicep", "alerts")
    assert body["params"]["alertEmail"] == "alertEmail"


def test_every_rule_is_an_enabled_log_alert_on_app_insights_wired_to_the_group() -> None:
    rules = _rules()
    assert set(rules) == {*ALERT_EVENTS, "function-failures"}
    for name, rule in rules.items():
        props = rule.body["properties"]
        assert rule.body["kind"] == "LogAlert", name
        assert props["enabled"] is True, name
        assert props["scopes"] == ["appInsightsId"], name
        assert [bm.render(a) for a in props["actions"]["actionGroups"]] == ["actionGroup.id"]
        (criterion,) = props["criteria"]["allOf"]
        assert (criterion["operator"], criterion["threshold"]) == ("GreaterThan", 0), name
        assert criterion["timeAggregation"] == "Count", name
        assert 0 <= props["severity"] <= 4


@pytest.mark.parametrize(("alert", "event"), sorted(ALERT_EVENTS.items()))
def test_event_rules_query_traces_for_their_event(alert: str, event: str) -> None:
    query = _query(_rules()[alert])
    assert query.startswith("traces | where ")
    assert _event_clause(event) in query
    assert query.count("(") == query.count(")")
    assert query.count('"') % 2 == 0


def test_function_failure_rule_counts_failed_invocations() -> None:
    assert _query(_rules()["function-failures"]).startswith("requests | where success == false")


def test_dead_lettered_events_alert() -> None:
    (metric,) = bm.resources_of_type(ALERTS, "Microsoft.Insights/metricAlerts")
    props = metric.body["properties"]
    assert props["scopes"] == ["systemTopicId"]
    (criterion,) = props["criteria"]["allOf"]
    assert criterion["metricName"] == "DeadLetteredCount"
    assert criterion["metricNamespace"] == "Microsoft.EventGrid/systemTopics"


@pytest.mark.parametrize(
    ("method", "kwargs", "event"),
    [
        ("records_failed", {"source": "hr", "run_id": "r1", "count": 3}, "records_failed"),
        ("run_held", {"source": "hr", "run_id": "r1", "reason_code": "mass_change"}, "run_held"),
        ("job_quarantined", {"source": "hr", "reason_code": "quarantine"}, "job_quarantined"),
        ("pull_failed", {"source": "hr", "reason_code": "SourceAuthError"}, "pull_failed"),
        ("source_stale", {"source": "hr", "hours": 30, "expected_hours": 24}, "source_stale"),
    ],
)
def test_alert_queries_match_what_the_telemetry_module_logs(
    method: str, kwargs: dict[str, object], event: str
) -> None:
    """The app's event line carries the property and the message prefix the rule filters on."""
    from connector.functions.telemetry import Telemetry

    records: list[logging.LogRecord] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger(f"tests.infra.alerts.{method}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(Capture())
    getattr(Telemetry(logger=logger), method)(**kwargs)
    (record,) = records
    assert record.levelno >= logging.WARNING
    assert getattr(record, ALERT_EVENT_PROPERTY) == event
    assert record.getMessage().startswith(f"connector {event} ")
    assert event in ALERT_EVENTS.values()


def test_deploy_doc_names_every_alert_event_and_metric() -> None:
    doc = (ROOT / "docs" / "deploy.md").read_text()
    assert f"`{ALERT_EVENT_PROPERTY}`" in doc
    for event in ALERT_EVENTS.values():
        assert re.search(rf"`{event}`", doc), event
    for metric in ALERT_METRICS:
        assert f"`{metric}`" in doc, metric


#: What each event rule puts in its alert: dimensions (the alert context names their values,
#: one alert per combination) taken from the event line's properties.
ALERT_DIMENSIONS = {
    "records-failed": ["source", "run_id", "failed", "report"],
    "runs-held": ["source", "run_id", "report"],
    "job-quarantined": ["source", "reason"],
    "pull-failed": ["source", "reason"],
    "source-stale": ["source", "hours", "expected_hours", "run_id", "report"],
}
_REPORT = (
    'strcat("${reportsUrl}", tostring(customDimensions["connector.source"]), "/",'
    ' tostring(customDimensions["connector.run_id"]), "/report.html")'
)


@pytest.mark.parametrize(("alert", "names"), sorted(ALERT_DIMENSIONS.items()))
def test_event_alerts_split_by_source_run_and_counts(alert: str, names: list[str]) -> None:
    """Each dimension is a string column the query projects, so its value reaches the alert."""
    rule = _rules()[alert]
    (criterion,) = rule.body["properties"]["criteria"]["allOf"]
    dims = criterion["dimensions"]
    assert [d["name"] for d in dims] == names
    assert all((d["operator"], d["values"]) == ("Include", ["*"]) for d in dims)
    query = _query(rule)
    for name in names:
        assert re.search(rf"[ ,]{name} = (tostring|strcat|iff)\(", query), name
    if "report" in names:
        assert _REPORT in query


@pytest.mark.parametrize("alert", sorted(ALERT_EVENTS))
def test_event_alert_descriptions_say_what_the_alert_carries(alert: str) -> None:
    description = _rules()[alert].body["properties"]["description"]
    assert f"(event {ALERT_EVENTS[alert]})" in description
    assert "dimensions carry the source" in description
    if "report" in ALERT_DIMENSIONS[alert]:
        assert "report link (${reportsUrl}<source>/<run id>/report.html" in description
        assert "Entra ID" in description
        assert "sig=" not in description


def test_source_stale_rule_matches_the_event_the_timer_logs() -> None:
    rule = _rules()["source-stale"]
    props = rule.body["properties"]
    assert _event_clause("source_stale") in _query(rule)
    assert "expect_every" in props["description"]
    assert props["severity"] == 2
    assert 'report = iff(isempty(tostring(customDimensions["connector.run_id"])), "none",' in (
        _query(rule)
    )  # a source that never had a run has no report to point at


def _kql_strcat(expression: str, dimensions: dict[str, str]) -> str:
    """Evaluate the report link's KQL (``strcat`` of string literals and
    ``tostring(customDimensions["..."])``) for one event line's custom dimensions."""
    body = re.fullmatch(r"strcat\((.*)\)", expression)
    assert body, expression
    parts = re.finditer(r'tostring\(customDimensions\["([^"]+)"\]\)|"([^"]*)"|(, )', body[1])
    out = []
    consumed = 0
    for part in parts:
        assert part.start() == consumed, f"unexpected text in {expression!r} at {consumed}"
        consumed = part.end()
        if part[1] is not None:
            out.append(dimensions[part[1]])
        elif part[2] is not None:
            out.append(part[2])
    assert consumed == len(body[1]), expression
    return "".join(out)


@pytest.mark.parametrize(
    "endpoint",
    ["https://stabc123.blob.core.windows.net/", "https://stabc123.blob.core.windows.net"],
)
def test_report_link_is_the_reports_blob_url_built_from_the_storage_blob_endpoint(
    endpoint: str,
) -> None:
    """main.bicep passes the drop account's real blob endpoint; the alert's report link is
    that endpoint + the container and path where the app writes the run's report.html."""
    from urllib.parse import urljoin

    from connector.clock import FakeClock
    from connector.state.blob import BlobStateStore
    from connector.sync.run_store import RunStore

    body, _ = bm.module(INFRA / "main.bicep", "alerts")
    assert bm.render(body["params"]["blobEndpoint"]) == "storage.outputs.blobEndpoint"
    storage = bm.module_path("storage.bicep")
    assert bm.code_without_comments(storage).count("output blobEndpoint string = ") == 1
    assert "output blobEndpoint string = storage.properties.primaryEndpoints.blob" in (
        storage.read_text()
    )
    url = bm.variable(ALERTS, "reportsUrl")["function"]
    assert url["type"] == "uri"  # ARM uri(): base ending in '/' + relative, like urljoin
    assert url["parameters"]["base_uri"] == "blobEndpoint"
    reports_url = urljoin(endpoint, url["parameters"]["relative_uri"])
    kql = bm.variable(ALERTS, "reportLinkKql").replace("${reportsUrl}", reports_url)
    link = _kql_strcat(
        kql, {"connector.source": "employees", "connector.run_id": "employees-0a1b2c3d4e5f60718293"}
    )

    blob = BlobStateStore.from_account_url(endpoint, credential=None, heartbeat=False)
    store = RunStore(blob, FakeClock())
    written = store.report_locations("employees", "employees-0a1b2c3d4e5f60718293")
    assert link == written["report.html"]
    assert link == (
        "https://stabc123.blob.core.windows.net/reports/employees/"
        "employees-0a1b2c3d4e5f60718293/report.html"
    )
