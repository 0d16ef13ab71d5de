"""The object-store interface every backend implements.

Keys are ``/``-separated strings. Content-addressed keys embed the sha256 of the bytes, so the same
photo is stored once however often it is ingested; named keys (checkpoints, indexes, exports) are
written atomically and may be replaced.
"""

from __future__ import annotations

import hashlib
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path

_KEY_PATTERN = re.compile(r"^[A-Za-z0-9._\-]+(/[A-Za-z0-9._\-]+)*$")


class StoreError(RuntimeError):
    """A store operation failed (names the key or URL and the reason)."""


class KeyNotFound(StoreError, KeyError):
    """The key does not exist in the store."""


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def content_key(prefix: str, digest: str, suffix: str = "") -> str:
    """The key of content with sha256 ``digest`` under ``prefix``, fanned out by its first byte."""
    return f"{prefix}/{digest[:2]}/{digest}{suffix}"


def check_key(key: str) -> str:
    """Refuse keys that could escape a folder store or confuse S3 (``..``, absolute, odd chars)."""
    if not _KEY_PATTERN.match(key) or any(part in {".", ".."} for part in key.split("/")):
        raise StoreError(f"invalid store key {key!r}")
    return key


class ObjectStore(ABC):
    """put/get/exists/list by key; one implementation per backend, chosen by URL."""

    url: str

    @abstractmethod
    def put(self, key: str, data: bytes) -> None:
        """Write ``data`` at ``key`` atomically: readers see the old object or the new one."""

    @abstractmethod
    def get(self, key: str) -> bytes:
        """Return the bytes at ``key``; raise :class:`KeyNotFound` if it is absent."""

    @abstractmethod
    def exists(self, key: str) -> bool:
        """Whether ``key`` holds an object."""

    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[str]:
        """Yield every key starting with ``prefix``, in lexical order, page by page."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove ``key``; removing an absent key is not an error."""

    def put_file(self, key: str, path: Path) -> None:
        """Write the file at ``path`` to ``key`` (backends may stream it; this one reads it)."""
        self.put(key, path.read_bytes())

    def ensure_ready(self) -> None:  # noqa: B027 - optional hook, most backends need nothing
        """Create what the backend needs before the first write (a folder, a bucket)."""

    def put_content(self, prefix: str, data: bytes, suffix: str = "") -> str:
        """Store ``data`` under its sha256 and return the key; a second put of it writes nothing."""
        key = content_key(prefix, sha256_hex(data), suffix)
        if not self.exists(key):
            self.put(key, data)
        return key

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"
