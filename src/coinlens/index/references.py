"""The reference index: one embedding per reference image, with the type and specimen it shows.

Exact inner-product search (embeddings are unit vectors, so inner product is cosine similarity)
up to ``approximate_above`` references per shard; beyond that a shard turns itself into HNSW
(faiss ``IndexHNSWFlat``, recall@10 >= 0.99 against exact at 1M in ``bench/index.py``), which
keeps growing incrementally. Image ids are the faiss ids, so adding and removing references needs
no rebuild and the index is kept in step with the catalogue as curators accept coins (HNSW cannot
delete, so removed ids are hidden from results and compacted away once they pile up).

References can be sharded by collection (a shard name per reference, ``index_shard_by``): each
shard is its own faiss index and its own file in the store, so a collection's shard grows and
is saved without rewriting the others, a search can be kept to some collections, and a search
over all of them merges the shards' best matches.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import secrets
from collections.abc import Collection, Iterable, Sequence

import faiss
import numpy as np

from coinlens.storage import KeyNotFound, ObjectStore
from coinlens.vision.cues import CUE_VERSION

HNSW_NEIGHBOURS = 32
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 128
COMPACT_FRACTION = 0.1  # rebuild an approximate shard when this share of it is removed ids
DEFAULT_SHARD = ""


def _new_faiss(dim: int, approximate: bool) -> faiss.IndexIDMap2:
    if approximate:
        inner = faiss.IndexHNSWFlat(dim, HNSW_NEIGHBOURS, faiss.METRIC_INNER_PRODUCT)
        inner.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        inner.hnsw.efSearch = HNSW_EF_SEARCH
    else:
        inner = faiss.IndexFlatIP(dim)
    return faiss.IndexIDMap2(inner)


def _is_hnsw(index: faiss.Index) -> bool:
    return isinstance(faiss.downcast_index(index.index), faiss.IndexHNSWFlat)


def _from_blob(blob: np.ndarray) -> faiss.IndexIDMap2:
    index = faiss.deserialize_index(blob)
    if _is_hnsw(index):
        faiss.downcast_index(index.index).hnsw.efSearch = HNSW_EF_SEARCH
    return index


class ReferenceIndex:
    """Search reference images by embedding; each carries its type id, specimen id, sha256 and
    physical cues (``coinlens.vision.cues``; absent for an index saved before cues existed or
    measured another way: ``CUE_VERSION``)."""

    def __init__(self, dim: int, *, approximate_above: int | None = None) -> None:
        self.dim = dim
        self.approximate_above = approximate_above  # per shard
        self._shards: dict[str, faiss.IndexIDMap2] = {}
        self._hidden: dict[str, set[int]] = {}  # removed from an HNSW shard, not yet compacted
        self._dirty: set[str] = set()  # shards changed since the last save
        self._saved: dict[str, str] = {}  # shard -> its file in the store, as last saved
        self.type_of: dict[int, int] = {}
        self.specimen_of: dict[int, int] = {}
        self.sha_of: dict[int, str] = {}
        self.shard_of: dict[int, str] = {}
        self.cues_of: dict[int, np.ndarray] = {}
        self.generation = 0  # bumped by every change, so derived tables know when to refresh

    def __len__(self) -> int:
        return len(self.type_of)

    @property
    def shards(self) -> list[str]:
        return sorted(self._shards)

    @property
    def approximate(self) -> bool:
        """Whether any shard has turned approximate (HNSW)."""
        return any(_is_hnsw(index) for index in self._shards.values())

    def _shard(self, name: str) -> faiss.IndexIDMap2:
        if name not in self._shards:
            self._shards[name] = _new_faiss(self.dim, approximate=False)
            self._hidden[name] = set()
        return self._shards[name]

    def _rebuild(self, name: str, approximate: bool) -> None:
        """Re-create one shard's faiss index (exact or HNSW) from its live references."""
        ids = np.array(sorted(i for i, s in self.shard_of.items() if s == name), dtype=np.int64)
        vectors = self.vectors(list(ids)) if len(ids) else np.zeros((0, self.dim), np.float32)
        index = _new_faiss(self.dim, approximate)
        if len(ids):
            index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids)
        self._shards[name], self._hidden[name] = index, set()
        self._dirty.add(name)

    def _keep_kind(self, names: Iterable[str]) -> None:
        """Switch a shard to HNSW past ``approximate_above``; compact away piled-up removals."""
        limit = self.approximate_above
        for name in set(names):
            index, hidden = self._shards[name], self._hidden[name]
            live = index.ntotal - len(hidden)
            if not _is_hnsw(index) and limit is not None and live > limit:
                self._rebuild(name, approximate=True)
            elif hidden and len(hidden) > COMPACT_FRACTION * index.ntotal:
                self._rebuild(name, approximate=_is_hnsw(index))

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
        shards: Sequence[str] | None = None,
    ) -> None:
        """Add references (to ``shards``, one name each; default one shard); an id already
        present is replaced (its type or collection may have changed)."""
        if len(image_ids) == 0:
            return
        image_ids = np.asarray(image_ids, dtype=np.int64)
        names = [DEFAULT_SHARD] * len(image_ids) if shards is None else list(shards)
        self.remove([int(i) for i in image_ids if int(i) in self])
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.shape[1] != self.dim:
            raise ValueError(f"vectors have {vectors.shape[1]} dimensions, the index {self.dim}")
        by_shard: dict[str, list[int]] = {}
        for row, name in enumerate(names):
            by_shard.setdefault(name, []).append(row)
        for name, rows in by_shard.items():
            index = self._shard(name)
            if self._hidden[name] & {int(image_ids[r]) for r in rows}:
                self._rebuild(name, approximate=_is_hnsw(index))  # HNSW cannot take an id back
                index = self._shards[name]
            index.add_with_ids(vectors[rows], image_ids[rows])
            self._dirty.add(name)
        for image_id, type_id, specimen_id, sha, name in zip(
            image_ids, type_ids, specimen_ids, shas, names, strict=True
        ):
            self.type_of[int(image_id)] = int(type_id)
            self.specimen_of[int(image_id)] = int(specimen_id)
            self.sha_of[int(image_id)] = sha
            self.shard_of[int(image_id)] = name
        if cues is not None:
            self.set_cues(image_ids, cues)
        self.generation += 1
        self._keep_kind(by_shard)

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
        touched: set[str] = set()
        for image_id in image_ids:
            name = self.shard_of.pop(image_id)
            touched.add(name)
            if _is_hnsw(self._shards[name]):
                self._hidden[name].add(image_id)
            else:
                self._shards[name].remove_ids(np.array([image_id], dtype=np.int64))
            self.type_of.pop(image_id, None)
            self.specimen_of.pop(image_id, None)
            self.sha_of.pop(image_id, None)
            self.cues_of.pop(image_id, None)
        self._dirty |= touched
        self.generation += 1
        self._keep_kind(touched)

    def _search_shard(
        self, name: str, queries: np.ndarray, k: int, without: Iterable[int] = ()
    ) -> tuple[np.ndarray, ...]:
        index = self._shards[name]
        skipped = self._hidden[name] | {i for i in without if self.shard_of.get(i) == name}
        if not skipped:
            return index.search(queries, k)
        similarities, ids = index.search(queries, k + len(skipped))
        dropped = np.isin(ids, np.fromiter(skipped, np.int64, len(skipped)))
        return np.where(dropped, -np.inf, similarities), np.where(dropped, -1, ids)

    def search(
        self,
        vectors: np.ndarray,
        k: int,
        *,
        shards: Iterable[str] | None = None,
        without: Collection[int] = (),
    ) -> tuple[np.ndarray, np.ndarray]:
        """(similarities, image ids), each (N, k), best first; missing slots have id -1.

        ``shards`` keeps the search to those collections (default: all of them); references
        ``without`` are passed over, as if removed (calibration's coins of a type it lacks)."""
        names = [n for n in (self.shards if shards is None else shards) if n in self._shards]
        size = sum(self._shards[n].ntotal - len(self._hidden[n]) for n in names)
        size -= sum(1 for i in set(without) if self.shard_of.get(i) in names)
        n = len(vectors)
        if size <= 0:
            return np.full((n, 1), -1.0, np.float32), np.full((n, 1), -1, np.int64)
        k = max(1, min(k, size))
        queries = np.ascontiguousarray(vectors, dtype=np.float32)
        without = set(without)
        found = [self._search_shard(name, queries, k, without) for name in names]
        similarities = np.concatenate([f[0] for f in found], axis=1)
        ids = np.concatenate([f[1] for f in found], axis=1)
        similarities = np.where(ids < 0, -np.inf, similarities)
        order = np.argsort(-similarities, axis=1, kind="stable")[:, :k]
        best_ids = np.take_along_axis(ids, order, axis=1)
        best = np.take_along_axis(similarities, order, axis=1)
        return np.where(best_ids < 0, -1.0, best).astype(np.float32), best_ids

    def vectors(self, image_ids: list[int]) -> np.ndarray:
        shards = self._shards
        return np.stack([shards[self.shard_of[int(i)]].reconstruct(int(i)) for i in image_ids])

    # -- persistence ---------------------------------------------------------------------------

    def save(self, store: ObjectStore, key: str) -> None:
        """Write the changed shards, each to a new file, then the table at ``key`` that names
        them: a crash part way leaves the previous save whole. Superseded files go last."""
        for name in list(self._shards):
            if self._shards[name].ntotal - len(self._hidden[name]) == 0:
                del self._shards[name], self._hidden[name]  # an emptied collection
        superseded = [k for n, k in self._saved.items() if n not in self._shards]
        saved = {n: k for n, k in self._saved.items() if n in self._shards}
        for name in sorted(self._shards):
            if name in saved and name not in self._dirty:
                continue
            if self._hidden[name]:
                self._rebuild(name, approximate=_is_hnsw(self._shards[name]))
            digest = hashlib.sha256(name.encode()).hexdigest()[:16]
            shard_key = f"{key}.shards/{digest}-{secrets.token_hex(6)}.faiss"
            store.put(shard_key, faiss.serialize_index(self._shards[name]).tobytes())
            if name in saved and saved[name] != shard_key:
                superseded.append(saved[name])
            saved[name] = shard_key
        ids = np.array(sorted(self.type_of), dtype=np.int64)
        with_cues = np.array([i for i in ids if i in self.cues_of], dtype=np.int64)
        names = sorted(saved)
        buffer = io.BytesIO()
        np.savez(
            buffer,
            ids=ids,
            types=np.array([self.type_of[i] for i in ids], dtype=np.int64),
            specimens=np.array([self.specimen_of[i] for i in ids], dtype=np.int64),
            shas=np.array([self.sha_of[i] for i in ids], dtype="U64"),
            shard_of=np.array([self.shard_of[i] for i in ids], dtype=str),
            shard_names=np.array(names, dtype=str),
            shard_keys=np.array([saved[n] for n in names], dtype=str),
            dim=np.array(self.dim),
            cue_ids=with_cues,
            cue_version=np.array(CUE_VERSION),
            cues=np.array([self.cues_of[i] for i in with_cues], dtype=np.float32),
        )
        store.put(key, buffer.getvalue())
        self._saved, self._dirty = saved, set()
        for old in superseded:
            with contextlib.suppress(KeyNotFound):
                store.delete(old)

    @classmethod
    def load(
        cls, store: ObjectStore, key: str, dim: int, *, approximate_above: int | None = None
    ) -> ReferenceIndex:
        """The index at ``key``, or an empty one if none was saved yet."""
        try:
            arrays = np.load(io.BytesIO(store.get(key)))
        except KeyNotFound:
            return cls(dim, approximate_above=approximate_above)
        index = cls(int(arrays["dim"]), approximate_above=approximate_above)
        if "index" in arrays:  # saved before shards: one faiss index inside the table
            index._shards[DEFAULT_SHARD] = _from_blob(arrays["index"])
            index._hidden[DEFAULT_SHARD] = set()
            shard_of = [DEFAULT_SHARD] * len(arrays["ids"])
            index._dirty.add(DEFAULT_SHARD)
        else:
            for name, shard_key in zip(arrays["shard_names"], arrays["shard_keys"], strict=True):
                blob = np.frombuffer(store.get(str(shard_key)), dtype=np.uint8)
                index._shards[str(name)], index._hidden[str(name)] = _from_blob(blob), set()
                index._saved[str(name)] = str(shard_key)
            shard_of = [str(n) for n in arrays["shard_of"]]
        rows = (arrays["ids"], arrays["types"], arrays["specimens"], arrays["shas"], shard_of)
        for image_id, type_id, specimen_id, sha, name in zip(*rows, strict=True):
            index.type_of[int(image_id)] = int(type_id)
            index.specimen_of[int(image_id)] = int(specimen_id)
            index.sha_of[int(image_id)] = str(sha)
            index.shard_of[int(image_id)] = name
        cue_version = int(arrays["cue_version"]) if "cue_version" in arrays else 1
        if "cues" in arrays and cue_version == CUE_VERSION:  # else measured again by sync
            index.set_cues(arrays["cue_ids"], arrays["cues"])
        index._keep_kind(index._shards)  # an exact shard saved before the catalogue grew
        return index
