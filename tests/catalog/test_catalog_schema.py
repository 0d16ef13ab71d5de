"""The schema comes from Alembic migrations, matches the models, and SQLite runs with WAL + FKs."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.exc import IntegrityError

from coinlens.catalog import Base, Catalog, CoinType, Home, Specimen
from coinlens.catalog.db import current_revision, head_revision


def test_init_creates_every_table_at_head(cli, home: Path) -> None:
    result = cli("init", "--home", home)
    assert result.exit_code == 0, result.stderr
    assert (home / "coinlens.toml").is_file()
    assert (home / "store").is_dir()
    with Home.open(home) as opened:
        tables = set(inspect(opened.catalog.engine).get_table_names())
        assert {
            "coin_type",
            "specimen",
            "image",
            "model_version",
            "suggestion",
            "review",
            "job",
            "alembic_version",
        } <= tables
        assert current_revision(opened.catalog.engine) == head_revision()
    again = cli("init", "--home", home)  # safe to repeat
    assert again.exit_code == 0


def test_migrations_match_the_models(tmp_path: Path) -> None:
    catalog = Catalog(f"sqlite:///{tmp_path / 'c.db'}")
    with catalog.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == []


def test_any_command_upgrades_an_older_database(cli, home: Path) -> None:
    home.mkdir()
    sqlite3.connect(home / "coinlens.db").close()  # a database from before any migration
    result = cli("status", "--home", home, "--json")
    assert result.exit_code == 0, result.stderr
    with Home.open(home) as opened:
        assert current_revision(opened.catalog.engine) == head_revision()


def test_sqlite_runs_with_wal_and_foreign_keys(tmp_path: Path) -> None:
    catalog = Catalog(f"sqlite:///{tmp_path / 'c.db'}")
    with catalog.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    with pytest.raises(IntegrityError), catalog.session() as session:
        session.add(Specimen(accession="X", status="backlog", type_id=999))
    with pytest.raises(IntegrityError), catalog.session() as session:
        session.add(Specimen(accession="Y", status="lost"))  # not a known status
    with catalog.session() as session:
        session.add(CoinType(reference="RRC 1/1"))
    with pytest.raises(IntegrityError), catalog.session() as session:
        session.add(CoinType(reference="RRC 1/1"))  # references are unique


def test_unusable_database_url_is_one_line(cli, home: Path) -> None:
    result = cli("status", "--home", home, env={"COINLENS_DATABASE_URL": "nonsense://"})
    assert result.exit_code == 1
    assert result.stderr.startswith("coinlens: error: ")
    assert len(result.stderr.strip().splitlines()) == 1
