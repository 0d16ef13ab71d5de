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


def test_migrations_match_the_models(home: Path) -> None:
    with Home.open(home) as opened, opened.catalog.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == []


def test_any_command_upgrades_an_older_database(cli, tmp_path: Path) -> None:
    home = tmp_path / "home"
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


def test_upgrading_a_0001_catalogue_fills_the_review_queue_summary(tmp_path: Path) -> None:
    """A catalogue identified before the review layer existed gets its queue summary on upgrade."""
    from alembic import command
    from sqlalchemy import text

    from coinlens.catalog.db import _alembic_config, create_catalog_engine

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_catalog_engine(url)
    config = _alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")
    now = "2026-01-01 00:00:00"
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO coin_type (id, reference, created_at) "
                "VALUES (1, '2e', :t), (2, '1e', :t)"
            ),
            {"t": now},
        )
        connection.execute(
            text(
                "INSERT INTO specimen (id, accession, status, created_at, updated_at) "
                "VALUES (1, 'a', 'backlog', :t, :t), (2, 'b', 'backlog', :t, :t)"
            ),
            {"t": now},
        )
        connection.execute(
            text(
                "INSERT INTO model_version (id, backbone, created_at) "
                "VALUES (1, 'x', :t), (2, 'x', :t)"
            ),
            {"t": now},
        )
        rows = [  # specimen, model, rank, type, score, decision
            (1, 1, 1, 2, 0.5, "review"),
            (1, 2, 1, 1, 0.9, "auto_accept"),
            (1, 2, 2, 2, 0.06, "auto_accept"),
        ]
        for specimen, model, rank, type_id, score, decision in rows:
            connection.execute(
                text(
                    "INSERT INTO suggestion (specimen_id, model_version_id, rank, type_id, score, "
                    "decision, created_at) VALUES (:s, :m, :r, :ty, :sc, :d, :t)"
                ),
                {
                    "s": specimen,
                    "m": model,
                    "r": rank,
                    "ty": type_id,
                    "sc": score,
                    "d": decision,
                    "t": now,
                },
            )
    engine.dispose()
    catalog = Catalog(url)  # upgrades to head
    with catalog.reader() as session:
        first, second = session.get(Specimen, 1), session.get(Specimen, 2)
        assert (first.suggested_type_id, first.suggestion_score, first.decision) == (
            1,
            0.9,
            "auto_accept",
        )
        assert first.suggestion_margin == pytest.approx(0.84)
        assert first.version == 1
        assert second.suggestion_score is None and second.decision is None
        # Rebuilding the specimen table must not cascade-delete what points at it.
        assert session.scalar(text("SELECT count(*) FROM suggestion")) == 3
    catalog.close()
