"""Memory of a sql-source pull stays flat with the table size: 100k vs 1M rows.

Each pull runs in a fresh interpreter and reports its peak RSS (``ru_maxrss``) and wall
time. Three rows per size and database: the interpreter with the modules imported and no
pull (the floor), the streamed pull (:func:`connector.sources.sql.pull_sql`, server-side
cursor into the snapshot CSV), and the naive baseline measured in the same run
(``fetchall()`` into a list, then the same CSV), which is what streaming avoids.

The REST reader is measured the same way against an in-process API
(``httpx.MockTransport``) serving nested records in offset pages of 1,000.

Databases: SQLite (a file) and PostgreSQL (a throwaway server started like the tests do;
needs Debian's ``postgresql``, installed by ``make postgres``). Ten text/number/date
columns per row, about 150 bytes of CSV.

    .venv/bin/python benchmarks/bench_sources.py [--sizes 100000 1000000] [--no-postgres]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHILD = r"""
import json, resource, sys, time, csv, os
from connector.sources.models import SqlSettings
from connector.sources.sql import pull_sql
import sqlalchemy as sa
mode, url, table, out = sys.argv[1:5]
auth = {"auth": "password", "password_setting": "PGPASS"} if "postgresql" in url else {}
cfg = SqlSettings(url=url, table=table, **auth) if mode == "streamed" else None
settings = {"PGPASS": os.environ.get("PGPASS", "")}
start = time.perf_counter()
rows = 0
if mode == "streamed":
    snap = pull_sql("bench", cfg, settings=settings, directory=out)
    rows = snap.rows
    snap.discard()
elif mode == "naive":
    u = sa.make_url(url)
    if u.get_backend_name() == "postgresql":
        u = u.set(password=settings["PGPASS"])
    engine = sa.create_engine(u)
    with engine.connect() as conn:
        result = conn.execute(sa.text(f"SELECT * FROM {table}"))
        keys = list(result.keys())
        data = result.fetchall()
    rows = len(data)
    with open(os.path.join(out, "naive.csv"), "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(keys)
        for r in data:
            w.writerow(["" if v is None else str(v) for v in r])
    os.unlink(os.path.join(out, "naive.csv"))
elif mode == "rest":
    import httpx, orjson
    from connector.sources.models import RestSettings
    from connector.sources.rest import pull_rest
    n = int(table)

    def page(request):
        off = int(request.url.params["offset"])
        items = [{"id": f"E{i:07d}", "name": {"given": f"First{i}", "family": f"Last{i}"},
                  "job": {"title": "Senior Engineer", "dept": f"Dept{i % 40}"},
                  "active": i % 7 != 0, "fte": 1.0, "emails": [{"value": f"e{i}@example.com"}]}
                 for i in range(off, min(off + 1000, n))]
        return httpx.Response(200, content=orjson.dumps({"data": items}))

    rcfg = RestSettings(url="https://hr.example.com/workers", records="$.data[*]",
                        paging={"type": "offset", "limit": 1000}, max_pages=10_000)
    snap = pull_rest("bench", rcfg, settings={}, transport=httpx.MockTransport(page), directory=out)
    rows = snap.rows
    snap.discard()
seconds = time.perf_counter() - start
print(json.dumps({"rows": rows, "seconds": seconds,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _child(mode: str, url: str, table: str, out: str, env: dict[str, str]) -> dict[str, float]:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, mode, url, table, out],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


COLUMNS = (
    "id TEXT, first TEXT, last TEXT, title TEXT, dept TEXT, manager TEXT,"
    " hired DATE, salary NUMERIC(10,2), active BOOLEAN, email TEXT"
)


def _sqlite(path: Path, n: int) -> str:
    with sqlite3.connect(path) as conn:
        conn.execute(f"CREATE TABLE people ({COLUMNS})")
        batch = []
        for i in range(n):
            batch.append(
                (f"E{i:07d}", f"First{i}", f"Last{i}", "Senior Engineer", f"Dept{i % 40}",
                 f"E{i // 10:07d}", "2021-03-04", 52000.5 + i % 1000, i % 7 != 0,
                 f"first{i}.last{i}@example.com")
            )  # fmt: skip
            if len(batch) == 50_000:
                conn.executemany("INSERT INTO people VALUES (?,?,?,?,?,?,?,?,?,?)", batch)
                batch.clear()
        if batch:
            conn.executemany("INSERT INTO people VALUES (?,?,?,?,?,?,?,?,?,?)", batch)
    conn.close()
    return f"sqlite:///{path}"


def _pg_fill(server: object, n: int, table: str) -> None:
    with server.admin() as conn:  # type: ignore[attr-defined]
        conn.execute(f"CREATE TABLE {table} ({COLUMNS})")
        conn.execute(
            f"INSERT INTO {table} SELECT 'E' || lpad(i::text, 7, '0'), 'First' || i,"
            " 'Last' || i, 'Senior Engineer', 'Dept' || (i % 40),"
            " 'E' || lpad((i / 10)::text, 7, '0'), DATE '2021-03-04', 52000.5 + i % 1000,"
            f" i % 7 <> 0, 'first' || i || '.last' || i || '@example.com'"
            f" FROM generate_series(0, {n - 1}) AS i"
        )


def _report(db: str, n: int, url: str, table: str, out: str, env: dict[str, str]) -> None:
    floor = _child("floor", url, table, out, env)
    streamed = _child("streamed", url, table, out, env)
    naive = _child("naive", url, table, out, env)
    assert streamed["rows"] == naive["rows"] == n
    for label, r in (
        ("imports only", floor),
        ("streamed pull", streamed),
        ("naive fetchall", naive),
    ):
        print(f"| {db} | {n:,} | {label} | {r['peak_mb']:.0f} MB | {r['seconds']:.2f} s |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    print(f"# {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs")
    print("| database | rows | what | peak RSS | time |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            url = _sqlite(Path(tmp) / f"people{n}.db", n)
            _report("SQLite", n, url, "people", tmp, {})
        for n in args.sizes:
            floor = _child("floor", "sqlite://", "x", tmp, {})
            rest = _child("rest", "sqlite://", str(n), tmp, {})
            assert rest["rows"] == n
            for label, r in (("imports only", floor), ("rest pull, pages of 1,000", rest)):
                print(
                    f"| REST (in-process API) | {n:,} | {label} | {r['peak_mb']:.0f} MB |"
                    f" {r['seconds']:.2f} s |"
                )
        if args.no_postgres:
            return
        from tests.sources.pg import SUPERUSER_PASSWORD, running_postgres

        with running_postgres() as server:
            for n in args.sizes:
                _pg_fill(server, n, f"people{n}")
                url = f"postgresql+psycopg://postgres@{server.host}:{server.port}/hr"
                _report("PostgreSQL", n, url, f"people{n}", tmp, {"PGPASS": SUPERUSER_PASSWORD})


if __name__ == "__main__":
    main()
