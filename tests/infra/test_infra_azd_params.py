"""`azd up` with a realistic CONNECTOR_SOURCES: substitution, parsing and the app setting.

The value goes: `azd env set CONNECTOR_SOURCES '<json>'` -> azd substitutes it into
infra/main.parameters.json and parses the result (modelled in azd_params.py) -> the Bicep
object parameter ``connectorSources`` -> ``string(connectorSources)`` in the app setting ->
the app parses it with ``connector.config.parse_sources``.
"""

from __future__ import annotations

import json
from typing import Any

import azd_params
import bicep_model as bm
import pytest
import yaml
from infra_contract import INFRA, ROOT

from connector.config import parse_sources

MAIN = INFRA / "main.bicep"
APP = bm.module_path("functionapp.bicep")
PARAMETERS = INFRA / "main.parameters.json"
MIN_AZD = "1.23.4"

ENDPOINT = (
    "https://graph.microsoft.com/beta/servicePrincipals/5b4e2a1c-9d3f-4e8a-b7c6-0f1e2d3c4b5a"
    "/synchronization/jobs/API2AAD.4e7c1b2a9f8d4c3e8b1a2f3e4d5c6b7a.0c1d2e3f-4a5b-6c7d-8e9f-0a1b2c3d4e5f"
    "/bulkUpload"
)
# A sources config as an operator would write it: quotes everywhere, a URL, a mapping path,
# a regular expression with backslashes and a `$`, a strptime format with `%`, a URN.
SOURCES: dict[str, Any] = {
    "daily_call_budget": 2000,
    "reconciliation": {"deadline": "2h", "skew": "10m"},
    "sources": [
        {
            "name": "employees",
            "match": "employees/",
            "mapping": "samples/mappings/default.yaml",
            "endpoint": ENDPOINT,
            "mode": "full",
            "leavers": "disable",
            "ignore_attributes": [
                "urn:ietf:params:scim:schemas:extension:contoso:1.0:User:extractedAt"
            ],
            "extract_timestamp": {
                "pattern": r"_(?P<ts>\d{8}T\d{6})\.csv$",
                "format": "%Y%m%dT%H%M%S",
            },
        },
        {
            "name": "contractors",
            "match": {"prefix": "contractors/", "glob": "contractors/*.csv"},
            "mapping": "mappings/contractors.yaml",
            "service_principal_id": "5b4e2a1c-9d3f-4e8a-b7c6-0f1e2d3c4b5a",
            "job_id": "API2AAD.0123456789abcdef0123456789abcdef.1111-2222",
            "mode": "delta",
            "leavers": "ignore",
            "thresholds": {"max_leavers": 50, "max_leavers_percent": None},
        },
    ],
}
# The forms people paste: one line (as docs/deploy.md shows) and pretty-printed with newlines.
VALUES = {
    "one-line": json.dumps(SOURCES, separators=(",", ":")),
    "spaced": json.dumps(SOURCES),
    "multi-line": json.dumps(SOURCES, indent=2),
}
BASE_ENV = {
    "AZURE_ENV_NAME": "hr-connector-prod",
    "AZURE_LOCATION": "westeurope",
    "ALERT_EMAIL": "hr-it-oncall@contoso.com",
}


def _declared_types(path: Any = MAIN) -> dict[str, str]:
    return {n: p["type"] for n, p in bm.parse(path)["parameters"].items()}


def _resolve(env: dict[str, str], types: dict[str, str] | None = None) -> dict[str, Any]:
    return azd_params.load_parameters(
        PARAMETERS.read_text(), types or _declared_types(), {**BASE_ENV, **env}
    )


def test_sources_parameter_is_an_object_turned_into_json_text_for_the_app_setting() -> None:
    assert _declared_types(MAIN)["connectorSources"] == "object"
    assert _declared_types(APP)["connectorSources"] == "object"
    body, _ = bm.module(MAIN, "functionApp")
    assert body["params"]["connectorSources"] == "connectorSources"
    site = bm.one(APP, "Microsoft.Web/sites")
    settings = {s["name"]: bm.render(s["value"]) for s in bm.literal_app_settings(site.body)}
    assert settings["CONNECTOR_SOURCES"] == "string(connectorSources)"
    # The file must stay valid JSON as written: azd parses it before substituting.
    raw = json.loads(PARAMETERS.read_text())["parameters"]
    assert raw["connectorSources"] == {"value": "${CONNECTOR_SOURCES}"}


@pytest.mark.parametrize("form", sorted(VALUES))
def test_realistic_sources_value_round_trips_to_the_app(form: str) -> None:
    value = VALUES[form]
    for char in ('"', "\\", "$"):  # the characters that used to break
        assert char in value
    params = _resolve({"CONNECTOR_SOURCES": value})
    assert params["connectorSources"] == SOURCES
    app_setting = azd_params.arm_string(params["connectorSources"])
    # The app reads the setting as YAML (JSON is YAML) and validates it as a sources config.
    assert yaml.safe_load(app_setting) == SOURCES
    config = parse_sources(app_setting, path=ROOT / "CONNECTOR_SOURCES")
    employees, contractors = config.sources
    assert employees.endpoint == ENDPOINT
    assert employees.mapping == "samples/mappings/default.yaml"
    assert employees.extract_timestamp is not None
    assert employees.extract_timestamp.pattern == r"_(?P<ts>\d{8}T\d{6})\.csv$"
    parsed = employees.extract_timestamp.parse("employees/hr_20260301T020000.csv")
    assert parsed is not None
    assert parsed.isoformat() == "2026-03-01T02:00:00+00:00"
    assert contractors.match.matches("contractors/week-09.csv")
    assert contractors.thresholds.max_leavers == 50
    assert contractors.thresholds.max_leavers_percent is None


def test_the_same_value_breaks_a_string_parameter() -> None:
    """Why the parameter is an object: as a string, azd pastes the JSON into JSON text."""
    types = {**_declared_types(), "connectorSources": "string"}
    with pytest.raises(azd_params.AzdParameterError, match="connectorSources"):
        _resolve({"CONNECTOR_SOURCES": VALUES["one-line"]}, types)


def test_a_yaml_value_fails_with_an_error_naming_the_parameter() -> None:
    with pytest.raises(
        azd_params.AzdParameterError, match=r"(?s)'connectorSources'.*not valid JSON"
    ):
        _resolve({"CONNECTOR_SOURCES": "sources:\n  - name: employees\n"})


def test_unset_sources_is_left_for_azd_to_prompt_for() -> None:
    params = _resolve({})
    assert "connectorSources" not in params
    assert bm.param_default(MAIN, "connectorSources") is None  # required: azd prompts


def test_every_parameter_resolves_with_only_the_documented_required_values() -> None:
    params = _resolve({"CONNECTOR_SOURCES": VALUES["one-line"]})
    declared = bm.parse(MAIN)["parameters"]
    file_params = set(json.loads(PARAMETERS.read_text())["parameters"])
    # Only AZURE_RESOURCE_GROUP_NAME (empty default: rg-<env>) and VAULT_REFERENCES (unset: the
    # template default {}, no Key Vault references) may drop out.
    assert set(params) == file_params - {"resourceGroupName", "vaultReferences"}
    for name, value in params.items():
        kind = declared[name]["type"]
        if kind == "int":
            assert str(int(value)) == str(value), (name, value)
        elif kind == "bool":
            assert str(value).lower() in {"true", "false"}, (name, value)
        elif kind == "object":
            assert isinstance(value, dict), name
        else:
            assert isinstance(value, str), (name, value)
            assert value, name
    assert params["environmentName"] == BASE_ENV["AZURE_ENV_NAME"]
    assert params["principalId"] != ""


def test_azure_yaml_requires_an_azd_that_parses_object_parameters() -> None:
    data = yaml.safe_load((ROOT / "azure.yaml").read_text())
    assert data["requiredVersions"] == {"azd": f">= {MIN_AZD}"}
