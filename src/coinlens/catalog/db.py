"""Opening the catalogue database and keeping its schema at the newest migration."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).with_name("migrations")


class CatalogError(RuntimeError):
    """The catalogue database cannot be opened or migrated (names the URL and the reason)."""


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    """WAL lets readers work during a batch; foreign keys are off in SQLite unless asked for."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def create_catalog_engine(url: str) -> Engine:
    """An engine for ``url``; for SQLite the file's folder is created and pragmas set."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise CatalogError(f"database URL {url!r} is not valid") from None
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    try:
        return create_engine(url, pool_pre_ping=True)
    except (ArgumentError, NoSuchModuleError, ImportError) as exc:
        safe = parsed.render_as_string(hide_password=True)
        raise CatalogError(f"database URL {safe!r} cannot be used ({exc})") from None


def _alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    return config


def head_revision() -> str:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(config).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def migrate(engine: Engine) -> bool:
    """Upgrade the schema to the newest migration; return whether anything was applied."""
    try:
        if current_revision(engine) == head_revision():
            return False
        config = _alembic_config(engine)
        sqlite = engine.dialect.name == "sqlite"
        with engine.connect() as connection:
            if sqlite:
                # SQLite alters a table by copying it and dropping the old one; with foreign keys
                # on, that drop would cascade-delete every row that points at it.
                connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
                connection.commit()
            try:
                with connection.begin():
                    config.attributes["connection"] = connection
                    command.upgrade(config, "head")
                if sqlite:
                    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise CatalogError(f"migration left broken references: {broken[:5]}")
            finally:
                if sqlite:
                    connection.exec_driver_sql("PRAGMA foreign_keys=ON")
                    connection.commit()
        return True
    except OperationalError as exc:
        url = engine.url.render_as_string(hide_password=True)
        raise CatalogError(f"cannot open database {url}: {exc.orig}") from None


class Catalog:
    """The catalogue of one coinlens home: an engine with a migrated schema and a session maker."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = create_catalog_engine(url)
        self.migrated = migrate(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session whose transaction commits on success and rolls back on any error."""
        with self._sessions() as session, session.begin():
            yield session

    def reader(self) -> Session:
        """A plain session for reads (the caller closes it)."""
        return self._sessions()

    def close(self) -> None:
        self.engine.dispose()
