"""Flex Consumption plan and function app: shape, identity and app settings."""

from __future__ import annotations

import importlib
import json

import bicep_model as bm
import pytest
from infra_contract import (
    BICEP_APP_SETTINGS,
    DEFAULT_DAILY_CALL_BUDGET,
    DEFAULT_RECONCILE_SCHEDULE,
    FORBIDDEN_SETTINGS,
    FORBIDDEN_SITE_CONFIG,
    INFRA,
    TRIGGER_CONNECTION,
)

APP = bm.module_path("functionapp.bicep")
MAIN = INFRA / "main.bicep"


def _site() -> bm.Resource:
    return bm.one(APP, "Microsoft.Web/sites")


def _settings() -> dict[str, str]:
    items = bm.literal_app_settings(_site().body)
    names = [i["name"] for i in items]
    assert len(names) == len(set(names)), f"duplicate app settings: {names}"
    return {i["name"]: bm.render(i["value"]) for i in items}


def test_plan_is_flex_consumption() -> None:
    plan = bm.one(APP, "Microsoft.Web/serverfarms")
    assert plan.body["sku"] == {"tier": "FlexConsumption", "name": "FC1"}
    assert plan.body["properties"]["reserved"] is True


def test_site_is_a_linux_function_app_on_https_with_one_user_assigned_identity() -> None:
    site = _site()
    assert site.body["kind"] == "functionapp,linux"
    props = site.body["properties"]
    assert props["httpsOnly"] is True
    assert bm.render(props["serverFarmId"]) == "plan.id"
    assert props["siteConfig"]["minTlsVersion"] == "1.2"
    identity = site.body["identity"]
    assert identity["type"] == "UserAssigned"
    assert list(identity["userAssignedIdentities"]) == ["'${identityId}'"]


def test_flex_runtime_scale_and_deployment_storage() -> None:
    config = _site().body["properties"]["functionAppConfig"]
    assert config["runtime"] == {"name": "python", "version": "pythonVersion"}
    assert config["scaleAndConcurrency"] == {
        "maximumInstanceCount": "maximumInstanceCount",
        "instanceMemoryMB": "instanceMemoryMB",
    }
    storage = config["deployment"]["storage"]
    assert storage["type"] == "blobContainer"
    assert storage["value"] == (
        "${storage.properties.primaryEndpoints.blob}${deploymentContainerName}"
    )
    assert storage["authentication"] == {
        "type": "UserAssignedIdentity",
        "userAssignedIdentityResourceId": "identityId",
    }
    for path in (APP, MAIN):
        versions = set(bm.param_decorators(path, "pythonVersion")["allowed"])
        assert versions <= {"3.10", "3.11", "3.12"}
        assert bm.param_decorators(path, "instanceMemoryMB")["allowed"] == [512, 2048, 4096]
        limits = bm.param_decorators(path, "maximumInstanceCount")
        assert (limits["min_value"], limits["max_value"]) == (1, 1000)


def test_site_config_has_no_flex_invalid_properties() -> None:
    site_config = _site().body["properties"]["siteConfig"]
    assert not set(site_config) & FORBIDDEN_SITE_CONFIG


def test_app_settings_are_exactly_the_contract_list() -> None:
    assert set(_settings()) == BICEP_APP_SETTINGS


def test_no_forbidden_setting_is_named_anywhere_in_infra() -> None:
    assert not set(_settings()) & FORBIDDEN_SETTINGS
    for path in INFRA.rglob("*.bicep"):
        text = bm.code_without_comments(path)
        for name in FORBIDDEN_SETTINGS - {"AzureWebJobsStorage", TRIGGER_CONNECTION}:
            assert name not in text, f"{path.name} mentions {name}"


def test_connections_are_identity_based_with_the_user_assigned_identity() -> None:
    settings = _settings()
    for conn in ("AzureWebJobsStorage", TRIGGER_CONNECTION):
        assert settings[f"{conn}__credential"] == "managedidentity"
        assert settings[f"{conn}__clientId"] == "identityClientId"
        assert settings[f"{conn}__blobServiceUri"] == "storage.properties.primaryEndpoints.blob"
        assert settings[f"{conn}__queueServiceUri"] == "storage.properties.primaryEndpoints.queue"
    assert (
        settings["AzureWebJobsStorage__tableServiceUri"]
        == "storage.properties.primaryEndpoints.table"
    )
    assert settings["GRAPH_CLIENT_ID"] == "identityClientId"
    assert settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"] == (
        "ClientId=${identityClientId};Authorization=AAD"
    )
    assert settings["APPLICATIONINSIGHTS_CONNECTION_STRING"] == (
        "appInsights.properties.ConnectionString"
    )


def test_connector_settings_come_from_parameters_with_documented_defaults() -> None:
    settings = _settings()
    assert settings["CONNECTOR_SOURCES"] == "string(connectorSources)"
    assert settings["RECONCILE_SCHEDULE"] == "reconcileSchedule"
    assert settings["CONNECTOR_DAILY_CALL_BUDGET"] == "string(dailyCallBudget)"
    assert bm.param_default(MAIN, "reconcileSchedule") == DEFAULT_RECONCILE_SCHEDULE
    assert bm.param_default(MAIN, "dailyCallBudget") == DEFAULT_DAILY_CALL_BUDGET
    assert bm.param_default(MAIN, "connectorSources") is None  # required: no silent empty config
    body, _ = bm.module(MAIN, "functionApp")
    for param in ("connectorSources", "reconcileSchedule", "dailyCallBudget"):
        assert body["params"][param] == param


def test_defaults_match_the_connector_settings_module() -> None:
    settings = importlib.import_module("connector.functions.settings")
    assert settings.DEFAULT_RECONCILE_SCHEDULE == DEFAULT_RECONCILE_SCHEDULE
    assert settings.DEFAULT_DAILY_CALL_BUDGET == DEFAULT_DAILY_CALL_BUDGET
    assert settings.TRIGGER_CONNECTION == TRIGGER_CONNECTION


def test_bicep_sets_every_setting_the_deployed_code_reads() -> None:
    settings = importlib.import_module("connector.functions.settings")
    names = getattr(settings, "AZURE_SETTING_NAMES", None)
    if names is None:
        pytest.fail(
            "connector.functions.settings.AZURE_SETTING_NAMES is gone; update this cross-check"
        )
    assert set(names) <= BICEP_APP_SETTINGS


def test_app_is_tagged_for_azd_and_depends_on_its_roles() -> None:
    site = _site()
    assert bm.render(site.body["tags"]) == "union(tags, {'azd-service-name': azdServiceName})"
    body, _ = bm.module(MAIN, "functionApp")
    assert body["params"]["azdServiceName"] == "connector"
    assert body["dependsOn"] == ["rbac"]


def test_kudu_basic_auth_publishing_is_disabled() -> None:
    (policy,) = bm.resources_of_type(APP, "Microsoft.Web/sites/basicPublishingCredentialsPolicies")
    assert policy.body["name"] == "scm"
    assert policy.body["properties"] == {"allow": False}


def test_main_parameters_file_binds_existing_parameters() -> None:
    params_file = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    declared = bm.parse(MAIN)["parameters"]
    assert set(params_file) <= set(declared)
    required = {n for n, p in declared.items() if p["default"] is None}
    assert required <= set(params_file), f"not bound for azd: {required - set(params_file)}"
    assert params_file["connectorSources"]["value"] == "${CONNECTOR_SOURCES}"
    assert params_file["alertEmail"]["value"] == "${ALERT_EMAIL}"
    assert params_file["grantGraphPermissions"]["value"] == "${GRANT_GRAPH_PERMISSIONS=true}"
    assert params_file["reconcileSchedule"]["value"] == (
        "${RECONCILE_SCHEDULE=" + DEFAULT_RECONCILE_SCHEDULE + "}"
    )
    assert params_file["dailyCallBudget"]["value"] == (
        "${CONNECTOR_DAILY_CALL_BUDGET=" + str(DEFAULT_DAILY_CALL_BUDGET) + "}"
    )


def test_forbidden_settings_are_not_set_through_azd_either() -> None:
    # The emulator settings (CONNECTOR_EMULATOR_URL/_TOKEN) are local-only: a deployment
    # that sets them would send tokens to a non-Graph host. Bicep is checked above.
    for path in (INFRA / "main.parameters.json", INFRA.parent / "azure.yaml"):
        text = path.read_text()
        for name in FORBIDDEN_SETTINGS - {"AzureWebJobsStorage", TRIGGER_CONNECTION}:
            assert name not in text, f"{path.name} mentions {name}"


def test_daily_budget_is_described_as_the_connector_counts_it() -> None:
    """connector/pacing.py counts bulkUpload calls over a rolling 24 h in hourly buckets."""
    deploy_md = (INFRA.parent / "docs" / "deploy.md").read_text()
    for path, text in (
        (MAIN, bm.param_decorators(MAIN, "dailyCallBudget")["description"]),
        (APP, bm.param_decorators(APP, "dailyCallBudget")["description"]),
        (INFRA.parent / "docs" / "deploy.md", deploy_md),
    ):
        assert "UTC day" not in text, path.name
        assert "rolling 24" in text, path.name
        assert "hourly buckets" in text, path.name
