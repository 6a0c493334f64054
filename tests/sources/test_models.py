"""The kind, sql, rest and schedule keys of the sources config: valid shapes load, and
every mistake is a ConfigError naming the key and its line."""

from __future__ import annotations

import pytest

from connector.config import parse_sources
from connector.errors import ConfigError
from tests.sources.helpers import ENDPOINT, source_from

SQL = """    kind: sql
    sql:
      url: postgresql+psycopg://hr-reader@db.example.com/hr
      query: SELECT * FROM staging.employees
      auth: entra
    schedule: "0 0 2 * * *"
"""
REST = """    kind: rest
    rest:
      url: https://hr.example.com/api/v1/workers
      records: "$.value[*]"
      next: "$['@odata.nextLink']"
      auth: {type: oauth2_client_credentials, token_url: https://login.example.com/token,
             client_id_setting: HR_CLIENT_ID, client_secret_setting: HR_CLIENT_SECRET}
    schedule: "0 30 1 * * Mon-Fri"
"""


def test_the_issue_examples_load() -> None:
    sql = source_from(SQL)
    assert sql.kind == "sql"
    assert sql.sql is not None
    assert sql.sql.auth == "entra"
    assert sql.match is None
    rest = source_from(REST)
    assert rest.rest is not None
    assert rest.rest.auth is not None
    assert rest.rest.auth.type == "oauth2_client_credentials"


def test_file_stays_the_default_kind() -> None:
    src = source_from("    match: employees/\n")
    assert src.kind == "file"


def test_pulled_sources_never_match_dropped_files() -> None:
    text = f"""sources:
  - name: files
    match: employees/
    mapping: m.yaml
    endpoint: {ENDPOINT}
  - name: db
    mapping: m.yaml
    endpoint: {ENDPOINT}
{SQL}"""
    config = parse_sources(text)
    assert config.source_for("employees/a.csv") is not None
    assert config.source_for("employees/a.csv").name == "files"  # type: ignore[union-attr]
    assert config.source_for("db/a.csv") is None


@pytest.mark.parametrize(
    ("block", "problem"),
    [
        ("    mode: full\n", "a file source needs match"),
        ("    kind: sql\n", "kind sql needs a sql: block"),
        ("    match: x/\n" + SQL, "match is for file sources"),
        ("    match: x/\n    schedule: '0 0 2 * * *'\n", "schedule is for sql and rest"),
        (SQL.replace("'0 0 2 * * *'", "'0 2 * * *'").replace('"0 0 2 * * *"', '"0 2 * * *"'),
         "six NCRONTAB fields"),
        (SQL.replace("hr-reader@", "hr-reader:s3cret@"), "must not contain a password"),
        (SQL.replace("query: SELECT * FROM staging.employees", "table: staging.employees")
         .replace("      auth: entra\n", "      auth: entra\n      query: SELECT 1\n"),
         "exactly one of query or table"),
        (SQL.replace("auth: entra", "auth: password"), "needs password_setting"),
        (SQL.replace("postgresql+psycopg://hr-reader@db.example.com/hr", "sqlite:///hr.db"),
         "auth: entra works with postgresql or mssql"),
        (SQL.replace("auth: entra", "auth: entra\n      watermark: UpdatedAt"),
         "needs mode: delta"),
        (SQL.replace("kind: sql", "kind: rest"), "a sql: block needs kind: sql"),
        (REST.replace("https://hr.example.com", "http://hr.example.com"), "must use https://"),
        (REST.replace('"$.value[*]"', '"$..value"'), "cannot read from position"),
        (REST.replace("records:", "headers: {Authorization: x}\n      records:"),
         "carries credentials"),
        (REST.replace("next:", "paging: {type: offset}\n      next:"), "not both"),
        (REST.replace("client_id_setting: HR_CLIENT_ID", "client_id_setting: 'my id'"),
         "should match pattern"),
        (REST.replace("oauth2_client_credentials", "kerberos"), "does not match any of the"),
        (REST.replace("records:", "body: {a: 1}\n      records:"), "body needs method: POST"),
    ],
)  # fmt: skip
def test_config_mistakes_are_named_with_their_line(block: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=r"<sources config>:\d+: sources\.0") as info:
        source_from(block)
    assert problem in str(info.value)


def test_basic_auth_needs_exactly_one_user_name() -> None:
    block = REST.replace(
        "{type: oauth2_client_credentials, token_url: https://login.example.com/token,\n"
        "             client_id_setting: HR_CLIENT_ID, client_secret_setting: HR_CLIENT_SECRET}",
        "{type: basic, password_setting: P}",
    )
    with pytest.raises(ConfigError, match="exactly one of username or username_setting"):
        source_from(block)
