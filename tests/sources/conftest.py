"""Fixtures of the source tests: a real PostgreSQL server (once per session) with a staging
table, and a fake HR REST API on loopback (per test, so hit counters start at zero)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.sources.fake_hr_api import ApiState, running_api
from tests.sources.pg import PgServer, running_postgres

READER_PASSWORD = "reader-pass"  # throwaway cluster's role password, not a secret
ENTRA_TOKEN = "eyJ.fake-entra-token.sig"  # what the fake credential hands out


@pytest.fixture(scope="session")
def postgres() -> Iterator[PgServer]:
    with running_postgres() as server:
        with server.admin() as conn:
            conn.execute(
                """
                CREATE SCHEMA staging;
                CREATE TABLE staging.employees (
                    "EmployeeID" text PRIMARY KEY,
                    "FirstName" text NOT NULL,
                    "LastName" text NOT NULL,
                    "HireDate" date,
                    "UpdatedAt" timestamptz NOT NULL,
                    "Active" boolean NOT NULL,
                    "Salary" numeric(10, 2),
                    "Rating" double precision,
                    "ManagerID" text,
                    "Photo" bytea
                );
                INSERT INTO staging.employees VALUES
                  ('E001', 'Ada', 'Lovelace', '2020-01-15', '2026-01-01 08:00:00+00', true,
                   52000.50, 0.1, NULL, NULL),
                  ('E002', 'Alan', 'Turing', '2021-06-01', '2026-01-02 09:30:00+00', true,
                   61000.00, 4.0, 'E001', NULL),
                  ('E003', 'Grace', 'Hopper', NULL, '2026-01-03 10:00:00+00', false,
                   NULL, NULL, 'E001', '\\x00ff');
                CREATE TABLE staging.empty_employees (LIKE staging.employees);
                """
            )
            conn.execute(f"CREATE ROLE hr_reader LOGIN PASSWORD '{READER_PASSWORD}'")
            conn.execute(f"CREATE ROLE mi_reader LOGIN PASSWORD '{ENTRA_TOKEN}'")
            for role in ("hr_reader", "mi_reader"):
                conn.execute(f"GRANT USAGE ON SCHEMA staging TO {role}")
                conn.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA staging TO {role}")
        yield server


@pytest.fixture
def hr_api() -> Iterator[ApiState]:
    with running_api() as state:
        yield state
