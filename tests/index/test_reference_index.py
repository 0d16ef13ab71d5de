"""The reference index: search, replace, remove, and persistence in the object store."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from coinlens.index import ReferenceIndex
from coinlens.storage import LocalStore


def _unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def test_search_replace_remove_and_persist(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    vectors = _unit(rng.normal(size=(50, 16)))
    index = ReferenceIndex(16)
    index.add(
        np.arange(100, 150),
        vectors,
        np.arange(50) % 5,
        np.arange(50),
        [f"sha{i}" for i in range(50)],
    )
    sims, ids = index.search(vectors[:3], 4)
    assert ids[:, 0].tolist() == [100, 101, 102]
    np.testing.assert_allclose(sims[:, 0], 1.0, atol=1e-5)

    index.add(np.array([100]), vectors[:1], np.array([9]), np.array([0]), ["sha0"])  # re-typed
    assert len(index) == 50 and index.type_of[100] == 9
    index.remove([101])
    assert 101 not in index and len(index) == 49
    assert index.search(vectors[1:2], 1)[1][0, 0] != 101

    store = LocalStore(tmp_path)
    index.save(store, "indexes/test.npz")
    again = ReferenceIndex.load(store, "indexes/test.npz", 16)
    assert again.type_of == index.type_of and again.sha_of == index.sha_of
    np.testing.assert_array_equal(again.search(vectors, 3)[1], index.search(vectors, 3)[1])
    assert len(ReferenceIndex.load(store, "indexes/none.npz", 16)) == 0
