"""Both catalogue engines for the tests: SQLite, and a real PostgreSQL server (Debian's
``postgresql``) started as a throwaway cluster on 127.0.0.1 for the test session.

Tests that take the ``database`` fixture run once per engine; on PostgreSQL every test gets a
database of its own (``CREATE DATABASE``; a template database when it starts from a prepared
catalogue).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers import free_port

ENGINES = ["sqlite", "postgresql"]


def _postgres_bindir() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


@dataclass
class PostgresServer:
    port: int

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://coinlens@127.0.0.1:{self.port}/{database}"

    def admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(
            f"postgresql://coinlens@127.0.0.1:{self.port}/postgres", autocommit=True
        ) as connection:
            connection.execute(sql)

    def create_database(self, template: str | None = None) -> str:
        name = f"t_{uuid.uuid4().hex[:16]}"
        self.admin(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
        return name


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    bindir = _postgres_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed (apt install postgresql; .ci/run does)")
    root = Path(tempfile.mkdtemp(prefix="coinlens-pg-"))
    as_postgres: list[str] = []
    if os.geteuid() == 0:  # the server refuses to run as root
        shutil.chown(root, "postgres", "postgres")
        as_postgres = ["runuser", "-u", "postgres", "--"]
    data, port = root / "data", free_port()
    subprocess.run(
        [*as_postgres, str(bindir / "initdb"), "-D", str(data), "-U", "coinlens", "-A", "trust",
         "-E", "UTF8", "--locale=C.UTF-8"],
        check=True, capture_output=True,
    )  # fmt: skip
    options = (
        f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
    )
    subprocess.run(
        [*as_postgres, str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l",
         str(root / "server.log"), "-w", "start"],
        check=True, capture_output=True,
    )  # fmt: skip
    try:
        yield PostgresServer(port)
    finally:
        subprocess.run(
            [*as_postgres, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)


def point_home_at(home: Path, url: str) -> None:
    """Make a home's catalogue live at ``url`` (its settings file says so)."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "coinlens.toml").write_text(f'[coinlens]\ndatabase_url = "{url}"\n')


def catalogue_url_for(request: pytest.FixtureRequest, engine: str, template: str | None = None):
    """None for SQLite (the home's own file); a new PostgreSQL database's URL otherwise."""
    if engine == "sqlite":
        return None
    server = request.getfixturevalue("postgres_server")
    return server.url(server.create_database(template))


@pytest.fixture(params=ENGINES)
def database(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The engine under test; on PostgreSQL, COINLENS_DATABASE_URL points at a fresh database."""
    if request.param == "postgresql":
        server = request.getfixturevalue("postgres_server")
        monkeypatch.setenv("COINLENS_DATABASE_URL", server.url(server.create_database()))
    return request.param
