"""A coinlens home: its settings, catalogue and object store, opened together."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coinlens.catalog.db import Catalog
from coinlens.config import Settings, load_settings
from coinlens.storage import ObjectStore, atomic_write, open_store

SETTINGS_TEMPLATE = """\
# coinlens settings for this home. Environment variables COINLENS_<NAME> override these.
[coinlens]
# database_url = "postgresql+psycopg://user:password@host/coinlens"   # default: SQLite here
# store_url = "s3://bucket/prefix"                                      # default: ./store here
# s3_endpoint_url = "http://127.0.0.1:9000"
# max_image_pixels = 100000000
# thumbnail_size = 256
# ingest_workers = 4
# max_upload_bytes = 26214400          # coinlens serve: largest upload accepted
# max_upload_pixels = 40000000
# session_hours = 12                   # how long a browser stays signed in
# public_url = "http://127.0.0.1:8000" # where exports point image and record links
# index_exact_limit = 250000           # more references than this: approximate (HNSW) search
# index_shard_by = "series"            # one index shard per collection: series, authority, mint,
#                                      # denomination or material of the type (default: one shard)
# auto_accept_precision = 0.98         # share of auto-accepted suggestions that must be right
# new_type_share = 0.1                 # share of backlog coins expected of types not catalogued:
#                                      # auto-accept keeps its precision with them mixed in
"""


@dataclass
class Home:
    """Everything a command needs; close it when done."""

    settings: Settings
    catalog: Catalog
    store: ObjectStore

    @classmethod
    def open(cls, home: str | os.PathLike[str] | None = None, **overrides: Any) -> Home:
        """Open (and migrate, if older) the home at ``home``; settings as in ``load_settings``."""
        settings = load_settings(home, **overrides)
        settings.home.mkdir(parents=True, exist_ok=True)
        store = open_store(settings.store_url, settings)
        return cls(settings=settings, catalog=Catalog(settings.database_url), store=store)

    @classmethod
    def init(cls, home: str | os.PathLike[str] | None = None, **overrides: Any) -> Home:
        """Create the home folder, a commented settings file, the schema and the store."""
        settings = load_settings(home, **overrides)
        settings.home.mkdir(parents=True, exist_ok=True)
        settings_file: Path = settings.settings_file
        if not settings_file.exists():
            atomic_write(settings_file, SETTINGS_TEMPLATE)
        opened = cls.open(home, **overrides)
        opened.store.ensure_ready()
        return opened

    def close(self) -> None:
        self.catalog.close()

    def __enter__(self) -> Home:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
