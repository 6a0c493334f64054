"""The rest source against a fake HR API on loopback: every paging style, every auth
kind, retries, the host rule and every failure naming the source."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from connector.errors import EmptySnapshotError, SourceAuthError, SourceError
from connector.sources.models import RestSettings
from connector.sources.rest import flatten, pull_rest, rest_columns
from tests.sources.fake_hr_api import API_KEY, CLIENT_ID, CLIENT_SECRET, ApiState
from tests.sources.helpers import read_csv

OAUTH = {
    "HR_CLIENT_ID": CLIENT_ID,
    "HR_CLIENT_SECRET": CLIENT_SECRET,
}


def _cfg(api: ApiState, path: str, **kw: Any) -> RestSettings:
    return RestSettings.model_validate({"url": f"{api.base}{path}", **kw})


def _oauth(api: ApiState) -> dict[str, str]:
    return {
        "type": "oauth2_client_credentials",
        "token_url": f"{api.base}/token",
        "client_id_setting": "HR_CLIENT_ID",
        "client_secret_setting": "HR_CLIENT_SECRET",
    }


def _ids(path: Path) -> list[str]:
    rows = read_csv(path)
    idx = rows[0].index("id")
    return [r[idx] for r in rows[1:]]


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def test_next_link_paging_with_oauth_reads_every_page(hr_api: ApiState, tmp_path: Path) -> None:
    cfg = _cfg(
        hr_api, "/odata/workers", records="$.value[*]", next="$['@odata.nextLink']",
        auth=_oauth(hr_api),
    )  # fmt: skip
    snap = pull_rest("hr-api", cfg, settings=OAUTH, directory=tmp_path)
    assert _ids(snap.path) == ["E001", "E002", "E003", "E004", "E005"]
    assert hr_api.hits["odata"] == 3
    assert hr_api.tokens_issued == 1


def test_nested_fields_become_dotted_columns_and_lists_are_indexed(
    hr_api: ApiState, tmp_path: Path
) -> None:
    cfg = _cfg(hr_api, "/apikey/workers", records="$.value[*]",
               auth={"type": "api_key", "key_setting": "HR_KEY"})  # fmt: skip
    snap = pull_rest("hr-api", cfg, settings={"HR_KEY": API_KEY}, directory=tmp_path)
    rows = read_csv(snap.path)
    assert rows[0] == [
        "id", "name.given", "name.family", "address.city", "active", "fte",
        "emails.0.type", "emails.0.value", "manager",
    ]  # fmt: skip
    assert rows[1] == ["E001", "Given1", "Family1", "Leeds", "true", "1", "work",
                       "e1@example.com", ""]  # fmt: skip
    assert rows[2][5] == "0.5"
    assert rows[4][4] == "false"


def test_flatten_keeps_scalars_and_drops_empty_containers() -> None:
    assert flatten({"a": {"b": 1, "c": []}, "d": [True, None], "e": {}}) == {
        "a.b": "1",
        "d.0": "true",
        "d.1": "",
    }


def test_offset_paging_stops_at_a_short_page(hr_api: ApiState, tmp_path: Path) -> None:
    cfg = _cfg(hr_api, "/offset/workers", records="$.data[*]",
               paging={"type": "offset", "limit": 2})  # fmt: skip
    snap = pull_rest("hr-api", cfg, settings={}, directory=tmp_path)
    assert _ids(snap.path) == ["E001", "E002", "E003", "E004", "E005"]
    assert hr_api.hits["offset"] == 3


def test_offset_paging_asks_once_more_after_an_exactly_full_last_page(
    hr_api: ApiState, tmp_path: Path
) -> None:
    cfg = _cfg(hr_api, "/offset/workers", records="$.data[*]",
               paging={"type": "offset", "limit": 5})  # fmt: skip
    snap = pull_rest("hr-api", cfg, settings={}, directory=tmp_path)
    assert snap.rows == 5
    assert hr_api.hits["offset"] == 2


def test_cursor_paging_follows_the_cursor_until_it_ends(hr_api: ApiState, tmp_path: Path) -> None:
    cfg = _cfg(hr_api, "/cursor/workers", records="$.items[*]",
               paging={"type": "cursor", "cursor": "$.next_cursor"})  # fmt: skip
    snap = pull_rest("hr-api", cfg, settings={}, directory=tmp_path)
    assert _ids(snap.path) == ["E001", "E002", "E003", "E004", "E005"]
    assert hr_api.hits["cursor"] == 3


def test_a_relative_next_link_is_resolved_against_the_page(
    hr_api: ApiState, tmp_path: Path
) -> None:
    cfg = _cfg(hr_api, "/relative/workers", records="$.data[*]", next="$.next")
    snap = pull_rest("hr-api", cfg, settings={}, directory=tmp_path)
    assert snap.rows == 5


def test_basic_auth_as_bamboohr_uses_it_with_the_key_as_user(
    hr_api: ApiState, tmp_path: Path
) -> None:
    auth = {"type": "basic", "username_setting": "BAMBOO_KEY", "password_setting": "BAMBOO_X"}
    cfg = _cfg(hr_api, "/basic/workers", records="$[*]", auth=auth)
    snap = pull_rest("hr-api", cfg, settings={"BAMBOO_KEY": API_KEY, "BAMBOO_X": "x"})
    assert snap.rows == 5
    snap.discard()
    assert not snap.path.exists()


def test_a_post_report_with_a_json_body(hr_api: ApiState, tmp_path: Path) -> None:
    cfg = _cfg(hr_api, "/report/custom", method="POST", body={"fields": ["id", "active"]},
               records="$.employees[*]")  # fmt: skip
    snap = pull_rest("hr-api", cfg, settings={}, directory=tmp_path)
    assert read_csv(snap.path)[:2] == [["id", "active"], ["E001", "true"]]


def test_429_with_retry_after_and_503_are_retried(hr_api: ApiState, tmp_path: Path) -> None:
    sleeps = Sleeps()
    cfg = _cfg(hr_api, "/flaky/workers", records="$.value[*]")
    snap = pull_rest("hr-api", cfg, settings={}, sleep=sleeps, directory=tmp_path)
    assert snap.rows == 5
    assert sleeps == [7.0, 2.0]  # Retry-After honoured, then the backoff's second step


def test_a_persistent_5xx_fails_after_the_bounded_retries(hr_api: ApiState) -> None:
    sleeps = Sleeps()
    cfg = _cfg(hr_api, "/down/workers", max_retries=3)
    with pytest.raises(SourceError, match=r"source 'hr-api': the API answered HTTP 503 after 3"):
        pull_rest("hr-api", cfg, settings={}, sleep=sleeps)
    assert sleeps == [1.0, 2.0, 4.0]
    assert hr_api.hits["down"] == 4


def test_a_next_link_to_another_host_is_refused_before_any_request(hr_api: ApiState) -> None:
    cfg = _cfg(hr_api, "/foreign/workers", records="$.value[*]", next="$.next",
               auth={"type": "bearer", "token_setting": "HR_TOKEN"})  # fmt: skip
    with pytest.raises(SourceError, match=r"elsewhere\.example\.net, not the configured host"):
        pull_rest("hr-api", cfg, settings={"HR_TOKEN": "tok-static"})
    assert hr_api.hits["foreign"] == 1


def test_redirects_are_not_followed(hr_api: ApiState) -> None:
    cfg = _cfg(hr_api, "/redirect/workers")
    with pytest.raises(SourceError, match=r"redirect \(HTTP 302\)"):
        pull_rest("hr-api", cfg, settings={})


def test_wrong_client_credentials_are_an_auth_error_without_the_secret(hr_api: ApiState) -> None:
    cfg = _cfg(hr_api, "/odata/workers", records="$.value[*]", auth=_oauth(hr_api))
    settings = {"HR_CLIENT_ID": CLIENT_ID, "HR_CLIENT_SECRET": "not-it-42"}
    with pytest.raises(SourceAuthError) as info:
        pull_rest("hr-api", cfg, settings=settings)
    assert "token endpoint refused the client credentials (HTTP 401)" in str(info.value)
    assert "not-it-42" not in str(info.value)


def test_a_refused_api_key_is_an_auth_error(hr_api: ApiState) -> None:
    cfg = _cfg(hr_api, "/apikey/workers", auth={"type": "api_key", "key_setting": "HR_KEY"})
    with pytest.raises(
        SourceAuthError, match=r"'hr-api': the API refused the credentials \(HTTP 403\)"
    ):
        pull_rest("hr-api", cfg, settings={"HR_KEY": "wrong"})


def test_an_expired_oauth_token_is_renewed_once(hr_api: ApiState, tmp_path: Path) -> None:
    cfg = _cfg(hr_api, "/expiring/workers", records="$.value[*]", auth=_oauth(hr_api))
    snap = pull_rest("hr-api", cfg, settings=OAUTH, directory=tmp_path)
    assert snap.rows == 5
    assert hr_api.tokens_issued == 2


def test_a_missing_secret_setting_is_named(hr_api: ApiState) -> None:
    cfg = _cfg(hr_api, "/odata/workers", auth={"type": "bearer", "token_setting": "HR_TOKEN"})
    with pytest.raises(SourceError, match="app setting 'HR_TOKEN'"):
        pull_rest("hr-api", cfg, settings={})


def test_no_records_is_refused_and_leaves_no_file(hr_api: ApiState, tmp_path: Path) -> None:
    cfg = _cfg(hr_api, "/empty/workers", records="$.value[*]")
    with pytest.raises(EmptySnapshotError, match="no records"):
        pull_rest("hr-api", cfg, settings={}, directory=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_an_answer_that_is_not_json_is_named(hr_api: ApiState) -> None:
    with pytest.raises(SourceError, match="not JSON"):
        pull_rest("hr-api", _cfg(hr_api, "/notjson/workers"), settings={})


def test_an_unreachable_api_is_a_source_error_after_retries(hr_api: ApiState) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sleeps = Sleeps()
    cfg = RestSettings(url=f"http://127.0.0.1:{port}/workers", max_retries=2)
    with pytest.raises(SourceError, match=r"cannot reach the API at 127\.0\.0\.1 \(ConnectError\)"):
        pull_rest("hr-api", cfg, settings={}, sleep=sleeps)
    assert sleeps == [1.0, 2.0]


def test_records_that_are_not_objects_are_named_by_page_and_position(hr_api: ApiState) -> None:
    cfg = _cfg(hr_api, "/odata/workers", records="$.value[*].id", auth=_oauth(hr_api))
    with pytest.raises(SourceError, match="record 1 on page 1 is not a JSON object"):
        pull_rest("hr-api", cfg, settings=OAUTH)


def test_rest_columns_reads_only_the_first_page(hr_api: ApiState) -> None:
    cfg = _cfg(hr_api, "/odata/workers", records="$.value[*]", next="$['@odata.nextLink']",
               auth=_oauth(hr_api))  # fmt: skip
    cols = rest_columns("hr-api", cfg, settings=OAUTH)
    assert cols[:3] == ["id", "name.given", "name.family"]
    assert hr_api.hits["odata"] == 1


def test_the_same_answers_give_the_same_content_hash(hr_api: ApiState, tmp_path: Path) -> None:
    cfg = _cfg(hr_api, "/cursor/workers", records="$.items[*]",
               paging={"type": "cursor", "cursor": "$.next_cursor"})  # fmt: skip
    first = pull_rest("hr-api", cfg, settings={}, directory=tmp_path)
    second = pull_rest("hr-api", cfg, settings={}, directory=tmp_path)
    assert first.sha256 == second.sha256
