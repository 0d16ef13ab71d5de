"""The reference index: one embedding per reference image, with the type and specimen it shows.

Exact inner-product search (embeddings are unit vectors, so inner product is cosine similarity)
up to ``approximate_above`` references; beyond that the index turns itself into HNSW (faiss
``IndexHNSWFlat``, recall@10 >= 0.99 against exact at 1M in ``bench/index.py``), which keeps
growing incrementally. Image ids are the faiss ids, so adding and removing references needs no
rebuild and the index is kept in step with the catalogue as curators accept coins (HNSW cannot
delete, so removed ids are hidden from results and compacted away once they pile up).
"""

from __future__ import annotations

import io

import faiss
import numpy as np

from coinlens.storage import KeyNotFound, ObjectStore

HNSW_NEIGHBOURS = 32
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 128
COMPACT_FRACTION = 0.1  # rebuild an approximate index when this share of it is removed ids


class ReferenceIndex:
    """Search reference images by embedding; each carries its type id, specimen id, sha256 and
    physical cues (``coinlens.vision.cues``; absent for an index saved before cues existed)."""

    def __init__(self, dim: int, *, approximate_above: int | None = None) -> None:
        self.dim = dim
        self.approximate_above = approximate_above
        self._index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        self._hidden: set[int] = set()  # removed from an approximate index, not yet compacted
        self.type_of: dict[int, int] = {}
        self.specimen_of: dict[int, int] = {}
        self.sha_of: dict[int, str] = {}
        self.cues_of: dict[int, np.ndarray] = {}
        self.generation = 0  # bumped by every change, so derived tables know when to refresh

    def __len__(self) -> int:
        return len(self.type_of)

    @property
    def approximate(self) -> bool:
        return isinstance(faiss.downcast_index(self._index.index), faiss.IndexHNSWFlat)

    def _rebuild(self, approximate: bool) -> None:
        """Re-create the faiss index (exact or HNSW) from the live references' vectors."""
        ids = np.array(sorted(self.type_of), dtype=np.int64)
        vectors = self.vectors(list(ids)) if len(ids) else np.zeros((0, self.dim), np.float32)
        if approximate:
            inner = faiss.IndexHNSWFlat(self.dim, HNSW_NEIGHBOURS, faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
            inner.hnsw.efSearch = HNSW_EF_SEARCH
        else:
            inner = faiss.IndexFlatIP(self.dim)
        index = faiss.IndexIDMap2(inner)
        if len(ids):
            index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids)
        self._index, self._hidden = index, set()

    def _keep_kind(self) -> None:
        """Switch to HNSW past ``approximate_above``; compact away piled-up removals."""
        limit = self.approximate_above
        if not self.approximate and limit is not None and len(self) > limit:
            self._rebuild(approximate=True)
        elif self._hidden and len(self._hidden) > COMPACT_FRACTION * self._index.ntotal:
            self._rebuild(approximate=self.approximate)

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
        cues: np.ndarray | None = None,
    ) -> None:
        """Add references; an id already present is replaced (its type may have changed)."""
        if len(image_ids) == 0:
            return
        image_ids = np.asarray(image_ids, dtype=np.int64)
        self.remove([int(i) for i in image_ids if int(i) in self])
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.shape[1] != self.dim:
            raise ValueError(f"vectors have {vectors.shape[1]} dimensions, the index {self.dim}")
        if self._hidden & {int(i) for i in image_ids}:
            self._rebuild(approximate=self.approximate)  # HNSW cannot take an id back
        self._index.add_with_ids(vectors, image_ids)
        for image_id, type_id, specimen_id, sha in zip(
            image_ids, type_ids, specimen_ids, shas, strict=True
        ):
            self.type_of[int(image_id)] = int(type_id)
            self.specimen_of[int(image_id)] = int(specimen_id)
            self.sha_of[int(image_id)] = sha
        if cues is not None:
            self.set_cues(image_ids, cues)
        self.generation += 1
        self._keep_kind()

    def set_cues(self, image_ids: np.ndarray | list[int], cues: np.ndarray) -> None:
        """Record (or back-fill) the physical cues of references already in the index."""
        for image_id, row in zip(image_ids, np.asarray(cues, dtype=np.float32), strict=True):
            if int(image_id) in self.type_of:
                self.cues_of[int(image_id)] = row
        self.generation += 1

    def cue_table(self) -> tuple[np.ndarray, np.ndarray]:
        """(cues, type ids) of the references whose cues are known."""
        ids = [i for i in self.type_of if i in self.cues_of]
        if not ids:
            return np.zeros((0, 0), np.float32), np.zeros(0, np.int64)
        return np.stack([self.cues_of[i] for i in ids]), np.array([self.type_of[i] for i in ids])

    def remove(self, image_ids: list[int]) -> None:
        image_ids = [int(i) for i in image_ids if int(i) in self.type_of]
        if not image_ids:
            return
        if self.approximate:
            self._hidden.update(image_ids)
        else:
            self._index.remove_ids(np.asarray(image_ids, dtype=np.int64))
        for image_id in image_ids:
            self.type_of.pop(image_id, None)
            self.specimen_of.pop(image_id, None)
            self.sha_of.pop(image_id, None)
            self.cues_of.pop(image_id, None)
        self.generation += 1
        self._keep_kind()

    def search(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(similarities, image ids), each (N, k), best first; missing slots have id -1."""
        k = max(1, min(k, len(self)))
        if len(self) == 0:
            n = len(vectors)
            return np.full((n, 1), -1.0, np.float32), np.full((n, 1), -1, np.int64)
        queries = np.ascontiguousarray(vectors, dtype=np.float32)
        if not self._hidden:
            return self._index.search(queries, k)
        similarities, ids = self._index.search(queries, k + len(self._hidden))
        out_similarities = np.full((len(queries), k), -1.0, np.float32)
        out_ids = np.full((len(queries), k), -1, np.int64)
        for row in range(len(queries)):
            keep = [j for j, i in enumerate(ids[row]) if i >= 0 and int(i) not in self._hidden]
            keep = keep[:k]
            out_similarities[row, : len(keep)] = similarities[row, keep]
            out_ids[row, : len(keep)] = ids[row, keep]
        return out_similarities, out_ids

    def vectors(self, image_ids: list[int]) -> np.ndarray:
        return np.stack([self._index.reconstruct(int(i)) for i in image_ids])

    # -- persistence ---------------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        if self._hidden:
            self._rebuild(approximate=self.approximate)  # what is saved holds no removed ids
        ids = np.array(sorted(self.type_of), dtype=np.int64)
        with_cues = np.array([i for i in ids if i in self.cues_of], dtype=np.int64)
        buffer = io.BytesIO()
        np.savez(
            buffer,
            index=faiss.serialize_index(self._index),
            ids=ids,
            types=np.array([self.type_of[i] for i in ids], dtype=np.int64),
            specimens=np.array([self.specimen_of[i] for i in ids], dtype=np.int64),
            shas=np.array([self.sha_of[i] for i in ids], dtype="U64"),
            dim=np.array(self.dim),
            cue_ids=with_cues,
            cues=np.array([self.cues_of[i] for i in with_cues], dtype=np.float32),
        )
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, *, approximate_above: int | None = None) -> ReferenceIndex:
        arrays = np.load(io.BytesIO(data))
        index = cls(int(arrays["dim"]), approximate_above=approximate_above)
        index._index = faiss.deserialize_index(arrays["index"])
        if index.approximate:
            faiss.downcast_index(index._index.index).hnsw.efSearch = HNSW_EF_SEARCH
        for image_id, type_id, specimen_id, sha in zip(
            arrays["ids"], arrays["types"], arrays["specimens"], arrays["shas"], strict=True
        ):
            index.type_of[int(image_id)] = int(type_id)
            index.specimen_of[int(image_id)] = int(specimen_id)
            index.sha_of[int(image_id)] = str(sha)
        if "cues" in arrays:
            index.set_cues(arrays["cue_ids"], arrays["cues"])
        index._keep_kind()  # an exact index saved before the catalogue grew past the limit
        return index

    def save(self, store: ObjectStore, key: str) -> None:
        store.put(key, self.to_bytes())

    @classmethod
    def load(
        cls, store: ObjectStore, key: str, dim: int, *, approximate_above: int | None = None
    ) -> ReferenceIndex:
        """The index at ``key``, or an empty one if none was saved yet."""
        try:
            return cls.from_bytes(store.get(key), approximate_above=approximate_above)
        except KeyNotFound:
            return cls(dim, approximate_above=approximate_above)
