"""Object storage chosen by URL: ``file:///path`` (a folder) or ``s3://bucket/prefix``.

boto3 is imported only when an S3 store is opened: a laptop's local home never pays its 0.2 s
import on every command.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlparse

from coinlens.config import Settings
from coinlens.storage.base import (
    KeyNotFound,
    ObjectStore,
    StoreError,
    check_key,
    content_key,
    sha256_hex,
)
from coinlens.storage.files import atomic_open, atomic_write
from coinlens.storage.local import LocalStore

if TYPE_CHECKING:  # for type checkers; at run time ``__getattr__`` below loads it
    from coinlens.storage.s3 import S3Store

__all__ = [
    "KeyNotFound",
    "LocalStore",
    "ObjectStore",
    "S3Store",
    "StoreError",
    "atomic_open",
    "atomic_write",
    "check_key",
    "content_key",
    "open_store",
    "sha256_hex",
]


def __getattr__(name: str) -> object:
    """``coinlens.storage.S3Store`` on first use (PEP 562), so that boto3 loads only then."""
    if name == "S3Store":
        from coinlens.storage.s3 import S3Store

        return S3Store
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def open_store(url: str, settings: Settings | None = None) -> ObjectStore:
    """Open the store at ``url``; S3 endpoint and credentials come from ``settings``."""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return LocalStore(Path(unquote(parsed.path)))
    if parsed.scheme == "" and url:
        return LocalStore(Path(url))
    if parsed.scheme == "s3":
        from coinlens.storage.s3 import S3Store

        if not parsed.netloc:
            raise StoreError(f"store URL {url!r} names no bucket (expected s3://bucket/prefix)")
        return S3Store(
            parsed.netloc,
            parsed.path,
            endpoint_url=settings.s3_endpoint_url if settings else None,
            region=settings.s3_region if settings else None,
            access_key_id=settings.s3_access_key_id if settings else None,
            secret_access_key=settings.s3_secret_access_key if settings else None,
        )
    raise StoreError(f"store URL {url!r} is not supported (use file:///path or s3://bucket/prefix)")
