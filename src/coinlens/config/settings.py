"""Settings resolution.

Precedence, lowest first: built-in defaults, ``HOME/coinlens.toml``, ``COINLENS_*`` environment
variables, explicit keyword overrides (what the CLI passes). The home folder itself comes from
``--home``, ``COINLENS_HOME`` or ``./coinlens-data``.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_HOME = "coinlens-data"
SETTINGS_FILE = "coinlens.toml"
ENV_PREFIX = "COINLENS_"


class SettingsError(ValueError):
    """A setting has a value that cannot be used (names the source and the value)."""


SHARD_BY = ("", "series", "authority", "mint", "denomination", "material")
"""``index_shard_by``: what names a reference's collection (its index shard). ``series`` is the
type reference without its number ("RRC 273/1" -> "RRC"); the others are type fields."""


# What each setting means, for ``HOME/coinlens.toml`` and the generated settings reference
# (``coinlens.cli.reference``); a test fails when a setting lacks its line.
SETTING_HELP = {
    "database_url": "SQLAlchemy URL of the catalogue; `postgresql+psycopg://...` for a team "
    "(default: `sqlite:///HOME/coinlens.db`)",
    "store_url": "the object store: `file:///path` or `s3://bucket/prefix` (default: "
    "`file:///HOME/store`)",
    "s3_endpoint_url": "S3 endpoint (MinIO, Ceph, ...); none: AWS",
    "s3_region": "S3 region",
    "s3_access_key_id": "S3 access key (the standard `AWS_*` variables and instance roles "
    "work too)",
    "s3_secret_access_key": "S3 secret key",
    "max_image_pixels": "larger images are refused as decompression bombs",
    "max_file_bytes": "larger files are refused",
    "thumbnail_size": "long side of stored thumbnails, px",
    "ingest_workers": "threads decoding and storing images during ingest",
    "max_upload_bytes": "`coinlens serve`: largest upload accepted per image",
    "max_upload_pixels": "`coinlens serve`: larger uploaded images are refused",
    "session_hours": "how long a browser stays signed in",
    "public_url": "the server's public address, for links in exports",
    "index_exact_limit": "more references than this: approximate (HNSW) search",
    "index_shard_by": "one index shard per collection: `series` (the type reference without its "
    'number, "RRC 273/1" -> "RRC"), `authority`, `mint`, `denomination` or `material`',
    "auto_accept_precision": "the share of auto-accepted suggestions that must be right; "
    "`coinlens train` fits the threshold on held-out coins for it",
    "new_type_share": "the share of backlog coins expected to be of types the catalogue lacks; "
    "auto-accept keeps its precision with that many mixed in (0: none expected)",
    "audit_tolerance": "a batch photographed unlike the calibration coins earns auto-accept by an "
    "audit whose 95% lower bound on precision reaches `auto_accept_precision` minus this",
    "audit_sample": "coins an audit draws at first (`coinlens audit`, the audit page)",
}


@dataclass(frozen=True)
class Settings:
    """Everything configurable, with the defaults of a laptop install.

    ``database_url`` and ``store_url`` default to a SQLite file and a folder inside ``home``.
    """

    home: Path
    database_url: str = ""
    store_url: str = ""
    s3_endpoint_url: str | None = None
    s3_region: str | None = None
    s3_access_key_id: str | None = None
    s3_secret_access_key: str | None = None
    max_image_pixels: int = 100_000_000
    max_file_bytes: int = 200 * 1024 * 1024
    thumbnail_size: int = 256
    ingest_workers: int = 4
    max_upload_bytes: int = 25 * 1024 * 1024
    max_upload_pixels: int = 40_000_000
    session_hours: int = 12
    public_url: str = "http://127.0.0.1:8000"
    index_exact_limit: int = 250_000
    index_shard_by: str = ""  # one index shard per collection: a type field, or "series"
    # the share of auto-accepted suggestions that must be right (``coinlens train`` fits the
    # threshold on held-out coins for it)
    auto_accept_precision: float = 0.98
    # the share of backlog coins expected to be of types the catalogue lacks: auto-accept
    # keeps ``auto_accept_precision`` with that many of them mixed in (0: none expected)
    new_type_share: float = 0.1
    # a batch photographed unlike the calibration coins earns auto-accept by an audit: its
    # reviewed sample's one-sided 95% lower bound on precision must reach
    # ``auto_accept_precision`` minus this
    audit_tolerance: float = 0.05
    audit_sample: int = 30  # coins an audit draws at first
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        home = Path(self.home).expanduser().resolve()
        object.__setattr__(self, "home", home)
        if not self.database_url:
            object.__setattr__(self, "database_url", f"sqlite:///{home / 'coinlens.db'}")
        if not self.store_url:
            object.__setattr__(self, "store_url", (home / "store").as_uri())
        if self.index_shard_by not in SHARD_BY:
            raise SettingsError(
                f"index_shard_by {self.index_shard_by!r}: use one of "
                + ", ".join(repr(v) for v in SHARD_BY)
            )

    @property
    def settings_file(self) -> Path:
        return self.home / SETTINGS_FILE


_FIELDS = {f.name: f for f in dataclasses.fields(Settings) if f.name not in {"home", "extra"}}
_RANGES = {  # for shares
    "auto_accept_precision": (0.5, 1.0),
    "new_type_share": (0.0, 0.9),
    "audit_tolerance": (0.0, 1.0),
}


def _coerce(name: str, raw: Any, source: str) -> Any:
    """Convert a raw TOML or env value to the type of the field ``name``."""
    default = _FIELDS[name].default
    if isinstance(default, float):
        low, high = _RANGES[name]
        try:
            value = float(raw)
        except (TypeError, ValueError):
            value = float("nan")
        if not low <= value <= high:  # nan too
            raise SettingsError(f"{source}: {name} must lie between {low} and {high}, got {raw!r}")
        return value
    if isinstance(default, int) and not isinstance(default, bool):
        try:
            value = int(raw)
        except (TypeError, ValueError):
            raise SettingsError(f"{source}: {name} must be a whole number, got {raw!r}") from None
        if value <= 0:
            raise SettingsError(f"{source}: {name} must be positive, got {raw!r}")
        return value
    if raw is None or raw == "":
        return None if default is None else ""
    return str(raw)


def load_settings(home: str | os.PathLike[str] | None = None, **overrides: Any) -> Settings:
    """Resolve settings for ``home`` (or ``COINLENS_HOME`` or ``./coinlens-data``).

    Unknown keys in the TOML file are kept in ``extra`` so later features can read them without a
    schema change here; unknown ``COINLENS_*`` variables are ignored.
    """
    home_path = Path(home or os.environ.get(f"{ENV_PREFIX}HOME") or DEFAULT_HOME)
    values: dict[str, Any] = {}
    extra: dict[str, Any] = {}

    toml_path = home_path.expanduser() / SETTINGS_FILE
    if toml_path.is_file():
        try:
            data = tomllib.loads(toml_path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise SettingsError(f"{toml_path}: not valid TOML ({exc})") from None
        section = data.get("coinlens", data)
        for key, raw in section.items():
            if key in _FIELDS:
                values[key] = _coerce(key, raw, str(toml_path))
            elif not isinstance(raw, dict):
                extra[key] = raw

    for key in _FIELDS:
        env_name = f"{ENV_PREFIX}{key.upper()}"
        if env_name in os.environ:
            values[key] = _coerce(key, os.environ[env_name], env_name)

    # The standard AWS variables work as well, so existing deployments need no new names.
    aws = {
        "s3_endpoint_url": "AWS_ENDPOINT_URL",
        "s3_region": "AWS_DEFAULT_REGION",
        "s3_access_key_id": "AWS_ACCESS_KEY_ID",
        "s3_secret_access_key": "AWS_SECRET_ACCESS_KEY",
    }
    for key, env_name in aws.items():
        if values.get(key) is None and os.environ.get(env_name):
            values[key] = os.environ[env_name]

    for key, raw in overrides.items():
        if raw is not None:
            values[key] = _coerce(key, raw, f"--{key.replace('_', '-')}")

    return Settings(home=home_path, extra=extra, **values)
