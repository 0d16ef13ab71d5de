"""The reference index: one embedding per reference image, with the type and specimen it shows.

Exact inner-product search (embeddings are unit vectors, so inner product is cosine similarity).
Image ids are the faiss ids, so adding and removing references needs no rebuild and the index
can be kept in step with the catalogue as curators accept coins.
"""

from __future__ import annotations

import io

import faiss
import numpy as np

from coinlens.storage import KeyNotFound, ObjectStore


class ReferenceIndex:
    """Search reference images by embedding; each carries its type id, specimen id and sha256."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        self.type_of: dict[int, int] = {}
        self.specimen_of: dict[int, int] = {}
        self.sha_of: dict[int, str] = {}

    def __len__(self) -> int:
        return self._index.ntotal

    def __contains__(self, image_id: int) -> bool:
        return image_id in self.type_of

    @property
    def ids(self) -> set[int]:
        return set(self.type_of)

    def add(
        self,
        image_ids: np.ndarray,
        vectors: np.ndarray,
        type_ids: np.ndarray,
        specimen_ids: np.ndarray,
        shas: list[str],
    ) -> None:
        """Add references; an id already present is replaced (its type may have changed)."""
        if len(image_ids) == 0:
            return
        image_ids = np.asarray(image_ids, dtype=np.int64)
        self.remove([int(i) for i in image_ids if int(i) in self])
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.shape[1] != self.dim:
            raise ValueError(f"vectors have {vectors.shape[1]} dimensions, the index {self.dim}")
        self._index.add_with_ids(vectors, image_ids)
        for image_id, type_id, specimen_id, sha in zip(
            image_ids, type_ids, specimen_ids, shas, strict=True
        ):
            self.type_of[int(image_id)] = int(type_id)
            self.specimen_of[int(image_id)] = int(specimen_id)
            self.sha_of[int(image_id)] = sha

    def remove(self, image_ids: list[int]) -> None:
        if not image_ids:
            return
        self._index.remove_ids(np.asarray(image_ids, dtype=np.int64))
        for image_id in image_ids:
            self.type_of.pop(image_id, None)
            self.specimen_of.pop(image_id, None)
            self.sha_of.pop(image_id, None)

    def search(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(similarities, image ids), each (N, k), best first; missing slots have id -1."""
        k = max(1, min(k, len(self)))
        if len(self) == 0:
            n = len(vectors)
            return np.full((n, 1), -1.0, np.float32), np.full((n, 1), -1, np.int64)
        return self._index.search(np.ascontiguousarray(vectors, dtype=np.float32), k)

    def vectors(self, image_ids: list[int]) -> np.ndarray:
        return np.stack([self._index.reconstruct(int(i)) for i in image_ids])

    # -- persistence ---------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        ids = np.array(sorted(self.type_of), dtype=np.int64)
        buffer = io.BytesIO()
        np.savez(
            buffer,
            index=faiss.serialize_index(self._index),
            ids=ids,
            types=np.array([self.type_of[i] for i in ids], dtype=np.int64),
            specimens=np.array([self.specimen_of[i] for i in ids], dtype=np.int64),
            shas=np.array([self.sha_of[i] for i in ids], dtype="U64"),
            dim=np.array(self.dim),
        )
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> ReferenceIndex:
        arrays = np.load(io.BytesIO(data))
        index = cls(int(arrays["dim"]))
        index._index = faiss.deserialize_index(arrays["index"])
        for image_id, type_id, specimen_id, sha in zip(
            arrays["ids"], arrays["types"], arrays["specimens"], arrays["shas"], strict=True
        ):
            index.type_of[int(image_id)] = int(type_id)
            index.specimen_of[int(image_id)] = int(specimen_id)
            index.sha_of[int(image_id)] = str(sha)
        return index

    def save(self, store: ObjectStore, key: str) -> None:
        store.put(key, self.to_bytes())

    @classmethod
    def load(cls, store: ObjectStore, key: str, dim: int) -> ReferenceIndex:
        """The index at ``key``, or an empty one if none was saved yet."""
        try:
            return cls.from_bytes(store.get(key))
        except KeyNotFound:
            return cls(dim)
