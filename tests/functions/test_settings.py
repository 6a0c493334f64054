"""App settings: every problem names the setting and says what to put there."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import Field

from connector.errors import ConfigError, UnsafeEndpointError
from connector.functions.settings import (
    APP_SETTING_NAMES,
    AZURE_SETTING_NAMES,
    DEFAULT_RECONCILE_SCHEDULE,
    LOCAL_ONLY_SETTING_NAMES,
    TRIGGER_CONNECTION,
    AppSettings,
    load_settings,
    schedule_interval,
)

UAMI = "8f2d3c4b-1a2b-4c3d-9e8f-0a1b2c3d4e5f"
SOURCES = "sources:\n  - name: employees\n    match: employees/\n"


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in APP_SETTING_NAMES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    return monkeypatch


def _local(env: pytest.MonkeyPatch) -> None:
    env.setenv("HrDropStorage", "UseDevelopmentStorage=true")
    env.setenv("CONNECTOR_SOURCES", SOURCES)


def _error(env: pytest.MonkeyPatch) -> str:
    with pytest.raises(ConfigError) as info:
        load_settings()
    return str(info.value)


def test_local_settings_with_defaults(env: pytest.MonkeyPatch) -> None:
    _local(env)
    s = load_settings()
    assert s.storage.mode == "connection_string"
    assert s.storage.connection_string == "UseDevelopmentStorage=true"
    assert s.reconcile_schedule == DEFAULT_RECONCILE_SCHEDULE
    assert s.connector_daily_call_budget == 2000
    assert s.telemetry_enabled is False
    assert s.sources_document == SOURCES
    assert "UseDevelopmentStorage" not in repr(s.storage)  # a key would never be printed


def test_identity_based_storage(env: pytest.MonkeyPatch) -> None:
    env.setenv("CONNECTOR_SOURCES", SOURCES)
    env.setenv("HrDropStorage__blobServiceUri", "https://acct.blob.core.windows.net/")
    env.setenv("HrDropStorage__queueServiceUri", "https://acct.queue.core.windows.net")
    env.setenv("HrDropStorage__credential", "managedidentity")
    env.setenv("HrDropStorage__clientId", UAMI)
    env.setenv("GRAPH_CLIENT_ID", UAMI)
    env.setenv("RECONCILE_SCHEDULE", "0 0 * * * *")
    env.setenv("CONNECTOR_DAILY_CALL_BUDGET", "6000")
    s = load_settings()
    assert s.storage.mode == "managed_identity"
    assert s.storage.blob_service_uri == "https://acct.blob.core.windows.net"
    assert s.storage.managed_identity_client_id == UAMI
    assert s.require_graph_client_id() == UAMI
    assert s.reconcile_schedule == "0 0 * * * *"
    assert s.connector_daily_call_budget == 6000


@pytest.mark.parametrize(
    ("settings", "named", "hint"),
    [
        ({"HrDropStorage": "UseDevelopmentStorage=true"}, "CONNECTOR_SOURCES", "missing"),
        ({"CONNECTOR_SOURCES": SOURCES}, "HrDropStorage", "UseDevelopmentStorage=true"),
        (
            {"CONNECTOR_SOURCES": SOURCES, "HrDropStorage__blobServiceUri": "https://a.blob.x"},
            "HrDropStorage__queueServiceUri",
            "must be accompanied",
        ),
        (
            {
                "CONNECTOR_SOURCES": SOURCES,
                "HrDropStorage__blobServiceUri": "http://acct.blob.core.windows.net",
                "HrDropStorage__queueServiceUri": "https://acct.queue.core.windows.net",
            },
            "HrDropStorage__blobServiceUri",
            "https",
        ),
        (
            {
                "CONNECTOR_SOURCES": SOURCES,
                "HrDropStorage__blobServiceUri": "https://a.blob.core.windows.net",
                "HrDropStorage__queueServiceUri": "https://a.queue.core.windows.net",
                "HrDropStorage__credential": "managedidentity",
            },
            "HrDropStorage__clientId",
            "user-assigned",
        ),
        (
            {
                "CONNECTOR_SOURCES": SOURCES,
                "HrDropStorage__blobServiceUri": "https://a.blob.core.windows.net",
                "HrDropStorage__queueServiceUri": "https://a.queue.core.windows.net",
                "HrDropStorage__credential": "connectionstring",
            },
            "HrDropStorage__credential",
            "managedidentity",
        ),
        (
            {"HrDropStorage": "UseDevelopmentStorage=true", "CONNECTOR_SOURCES": "sources: ["},
            "CONNECTOR_SOURCES",
            "line 1",
        ),
        (
            {"HrDropStorage": "UseDevelopmentStorage=true", "CONNECTOR_SOURCES": "- a\n- b\n"},
            "CONNECTOR_SOURCES",
            "mapping",
        ),
        (
            {
                "HrDropStorage": "UseDevelopmentStorage=true",
                "CONNECTOR_SOURCES": SOURCES,
                "RECONCILE_SCHEDULE": "*/15 * * *",
            },
            "RECONCILE_SCHEDULE",
            "NCRONTAB",
        ),
        (
            {
                "HrDropStorage": "UseDevelopmentStorage=true",
                "CONNECTOR_SOURCES": SOURCES,
                "CONNECTOR_DAILY_CALL_BUDGET": "lots",
            },
            "CONNECTOR_DAILY_CALL_BUDGET",
            "integer",
        ),
        (
            {
                "HrDropStorage": "UseDevelopmentStorage=true",
                "CONNECTOR_SOURCES": SOURCES,
                "CONNECTOR_DAILY_CALL_BUDGET": "0",
            },
            "CONNECTOR_DAILY_CALL_BUDGET",
            "greater than or equal to 1",
        ),
        (
            {
                "HrDropStorage": "UseDevelopmentStorage=true",
                "CONNECTOR_SOURCES": SOURCES,
                "GRAPH_CLIENT_ID": "my-identity",
            },
            "GRAPH_CLIENT_ID",
            "GUID",
        ),
        (
            {
                "HrDropStorage": "UseDevelopmentStorage=true",
                "CONNECTOR_SOURCES": SOURCES,
                "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "Authorization=Key",
            },
            "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
            "Authorization=AAD",
        ),
    ],
)
def test_bad_settings_are_named(
    env: pytest.MonkeyPatch, settings: dict[str, str], named: str, hint: str
) -> None:
    for key, value in settings.items():
        env.setenv(key, value)
    message = _error(env)
    assert f"{named}:" in message
    assert hint in message


def test_blank_setting_counts_as_missing(env: pytest.MonkeyPatch) -> None:
    _local(env)
    env.setenv("CONNECTOR_SOURCES", "   ")
    assert "CONNECTOR_SOURCES: missing" in _error(env)
    env.setenv("CONNECTOR_SOURCES", SOURCES)
    env.setenv("RECONCILE_SCHEDULE", "")
    env.setenv("CONNECTOR_DAILY_CALL_BUDGET", "")
    s = load_settings()
    assert s.reconcile_schedule == DEFAULT_RECONCILE_SCHEDULE
    assert s.connector_daily_call_budget == 2000


def test_graph_client_id_required_when_asked(env: pytest.MonkeyPatch) -> None:
    _local(env)
    with pytest.raises(ConfigError, match="GRAPH_CLIENT_ID: missing"):
        load_settings().require_graph_client_id()


def test_emulator_token_only_for_loopback(env: pytest.MonkeyPatch) -> None:
    _local(env)
    assert load_settings().emulator_token_for("https://graph.microsoft.com/beta/x") is None
    env.setenv("CONNECTOR_EMULATOR_TOKEN", "local-token")
    assert "CONNECTOR_EMULATOR_URL: missing" in _error(env)
    env.setenv("CONNECTOR_EMULATOR_URL", "http://10.0.0.5:8400")
    assert "CONNECTOR_EMULATOR_URL: must be a loopback address" in _error(env)
    env.setenv("CONNECTOR_EMULATOR_URL", "http://127.0.0.1:8400/")
    s = load_settings()
    assert s.emulator_enabled
    assert s.connector_emulator_url == "http://127.0.0.1:8400"
    assert s.emulator_token_for("http://127.0.0.1:8400/beta/x") == "local-token"
    assert s.emulator_token_for("http://localhost:8400/beta/x") == "local-token"
    assert s.emulator_token_for("http://[::1]:8400/beta/x") == "local-token"
    for url in ("https://graph.microsoft.com/beta/x", "http://127.0.0.1.evil.example/x"):
        with pytest.raises(UnsafeEndpointError, match="CONNECTOR_EMULATOR_TOKEN"):
            s.emulator_token_for(url)


def test_telemetry_client_id(env: pytest.MonkeyPatch) -> None:
    _local(env)
    env.setenv(
        "APPLICATIONINSIGHTS_CONNECTION_STRING",
        "InstrumentationKey=00000000-0000-0000-0000-000000000000",
    )
    env.setenv("APPLICATIONINSIGHTS_AUTHENTICATION_STRING", f"Authorization=AAD;ClientId={UAMI}")
    s = load_settings()
    assert s.telemetry_enabled
    assert s.telemetry_client_id == UAMI


def test_setting_name_lists_are_consistent() -> None:
    assert len(set(APP_SETTING_NAMES)) == len(APP_SETTING_NAMES)
    assert set(APP_SETTING_NAMES) > LOCAL_ONLY_SETTING_NAMES
    assert set(AZURE_SETTING_NAMES) == set(APP_SETTING_NAMES) - LOCAL_ONLY_SETTING_NAMES


def _aliases(model: type[AppSettings]) -> set[str]:
    """The app-setting names a settings model reads: every field's validation alias."""
    names: set[str] = set()
    for name, info in model.model_fields.items():
        alias = info.validation_alias
        assert isinstance(alias, str), f"field {name} has no plain app-setting alias"
        names.add(alias)
    return names


# The trigger connection's settings the Functions host resolves for the blob trigger; the
# code reads them through AppSettings fields too (storage client built the same way).
_TRIGGER_NAMES = {n for n in APP_SETTING_NAMES if n.startswith(f"{TRIGGER_CONNECTION}")}


def test_app_setting_names_are_exactly_what_the_model_reads() -> None:
    """A field added to AppSettings without APP_SETTING_NAMES (and so without the README
    table and the Bicep app settings) fails here."""
    assert _aliases(AppSettings) | _TRIGGER_NAMES == set(APP_SETTING_NAMES)
    assert _aliases(AppSettings) >= _TRIGGER_NAMES


def test_the_alias_check_catches_a_new_undocumented_setting() -> None:
    class WithNewSetting(AppSettings):
        reconcile_jitter: int = Field(default=0, validation_alias="RECONCILE_JITTER")

    assert _aliases(WithNewSetting) - set(APP_SETTING_NAMES) == {"RECONCILE_JITTER"}


@pytest.mark.parametrize(
    ("schedule", "interval"),
    [
        ("0 */15 * * * *", timedelta(minutes=15)),
        ("*/15 * * * *", timedelta(minutes=15)),  # five fields: no seconds
        ("0 0 * * * *", timedelta(hours=1)),
        ("0 30 2 * * *", timedelta(days=1)),
        ("0 0 9 * * MON-FRI", timedelta(days=3)),  # Friday 09:00 to Monday 09:00
        ("0 0,30 8-17 * * *", timedelta(hours=14, minutes=30)),
        ("*/10 * * * * *", timedelta(minutes=1)),
    ],
)
def test_schedule_interval_is_the_longest_gap(schedule: str, interval: timedelta) -> None:
    assert schedule_interval(schedule) == interval


@pytest.mark.parametrize("schedule", ["", "bad", "0 0 0 1 * *", "0 0 0 31 2 *", "0 99 * * * *"])
def test_schedule_interval_is_none_when_it_cannot_tell(schedule: str) -> None:
    assert schedule_interval(schedule) is None


def test_stale_after_follows_the_schedule_with_a_floor_and_a_fallback() -> None:
    from connector.functions.health import stale_after

    assert stale_after("0 */15 * * * *") == timedelta(minutes=45)
    assert stale_after("0 */5 * * * *") == timedelta(minutes=35)  # 5 min + 30 min timeout
    assert stale_after("0 0 * * * *") == timedelta(hours=3)
    assert stale_after("0 0 0 1 * *") == timedelta(hours=1)  # monthly: unreadable here
