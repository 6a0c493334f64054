"""A throwaway PostgreSQL server for the tests: ``initdb`` in a temporary folder, then
``postgres`` on a free loopback port, as the ``postgres`` user when the tests run as root
(the server refuses root). Installed by ``make postgres`` (Debian's ``postgresql``)."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

SUPERUSER_PASSWORD = "pg-test-superuser"  # a throwaway cluster's, not a secret
INSTALL = "make postgres (as root: apt-get install postgresql)"


@dataclass(frozen=True)
class PgServer:
    host: str
    port: int

    def url(self, user: str, database: str = "hr", driver: str = "psycopg") -> str:
        return f"postgresql+{driver}://{user}@{self.host}:{self.port}/{database}"

    def admin(self, database: str = "hr") -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(
            host=self.host,
            port=self.port,
            user="postgres",
            password=SUPERUSER_PASSWORD,
            dbname=database,
            autocommit=True,
        )


def pg_bindir() -> Path:
    configured = os.environ.get("PG_BIN")
    candidates = (
        [configured]
        if configured
        else sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name))
    )
    for c in reversed([c for c in candidates if c]):
        if (Path(c) / "initdb").is_file() and (Path(c) / "postgres").is_file():
            return Path(c)
    pytest.fail(
        f"PostgreSQL server binaries not found; install them with: {INSTALL}", pytrace=False
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_server_user(cmd: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return cmd
    return ["runuser", "-u", "postgres", "--", *cmd]


@contextmanager
def running_postgres() -> Iterator[PgServer]:
    """Start a private cluster; stop and delete it on exit."""
    bindir = pg_bindir()
    root = Path(tempfile.mkdtemp(prefix="connector-pg-"))
    try:
        if os.geteuid() == 0:
            shutil.chown(root, "postgres", "postgres")
        pwfile = root / "pw"
        pwfile.write_text(SUPERUSER_PASSWORD + "\n")
        if os.geteuid() == 0:
            shutil.chown(pwfile, "postgres", "postgres")
        data = root / "data"
        subprocess.run(
            _as_server_user(
                [
                    str(bindir / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    "postgres",
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    f"--pwfile={pwfile}",
                    "-E",
                    "UTF8",
                    "--no-sync",
                ]
            ),
            check=True,
            capture_output=True,
        )
        port = _free_port()
        proc = subprocess.Popen(
            _as_server_user(
                [
                    str(bindir / "postgres"),
                    "-D",
                    str(data),
                    "-k",
                    str(root),
                    "-p",
                    str(port),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    "fsync=off",
                ]
            ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            server = PgServer("127.0.0.1", port)
            _wait_ready(server, proc)
            yield server
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _wait_ready(server: PgServer, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            pytest.fail(f"postgres exited at start-up with {proc.returncode}", pytrace=False)
        try:
            with server.admin("postgres") as conn:
                conn.execute("CREATE DATABASE hr")
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                pytest.fail("postgres did not accept connections within 60 s", pytrace=False)
            time.sleep(0.2)
