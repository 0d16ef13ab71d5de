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


def test_a_search_can_pass_over_some_references_as_if_removed() -> None:
    """Calibration matches held-out coins as if the catalogue lacked their type: the search
    passes over those references and still returns k others, in exact and approximate shards,
    and the index itself is left as it was."""
    rng = np.random.default_rng(2)
    vectors = _unit(rng.normal(size=(300, 16)))
    types = np.arange(300) % 3
    for index in (ReferenceIndex(16), ReferenceIndex(16, approximate_above=100)):
        index.add(np.arange(300), vectors, types, np.arange(300), [f"s{i}" for i in range(300)])
        of_type_0 = [i for i in range(300) if types[i] == 0]
        sims, ids = index.search(vectors[:5], 10, without=of_type_0)
        assert ids.shape == (5, 10) and (ids >= 0).all()
        assert not set(ids.ravel().tolist()) & set(of_type_0)
        assert np.all(np.diff(sims, axis=1) <= 1e-6)
        assert index.search(vectors[:1], 1)[1][0, 0] == 0 and len(index) == 300


def _clustered(n: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    centres = rng.normal(size=(max(10, n // 50), dim))
    return _unit(centres[rng.integers(0, len(centres), n)] + rng.normal(scale=0.6, size=(n, dim)))


def test_past_the_limit_the_index_turns_approximate_and_stays_right(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    dim, n = 64, 4000
    data = _clustered(n, dim, rng)
    queries = data[rng.integers(0, n, 200)] + _unit(rng.normal(size=(200, dim))) * 0.05
    exact = ReferenceIndex(dim)
    grown = ReferenceIndex(dim, approximate_above=1000)
    for start in range(0, n, 500):  # incremental, as a catalogue grows
        chunk = np.arange(start, start + 500)
        for index in (exact, grown):
            index.add(chunk, data[chunk], chunk % 7, chunk, [f"s{i}" for i in chunk])
        assert grown.approximate == (start + 500 > 1000)
    _, truth = exact.search(queries, 10)
    _, found = grown.search(queries, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, truth, strict=True)])
    assert recall >= 0.95

    removed = [int(i) for i in truth[:20, 0]]
    grown.remove(removed)
    exact.remove(removed)
    assert len(grown) == n - len(set(removed))
    _, after = grown.search(queries, 10)
    assert not set(after.ravel().tolist()) & set(removed)
    grown.add(np.array(removed[:1]), data[removed[:1]], np.array([3]), np.array([0]), ["back"])
    assert (
        grown.type_of[removed[0]] == 3 and grown.search(data[removed[:1]], 1)[1][0, 0] == removed[0]
    )

    store = LocalStore(tmp_path / "store")
    grown.save(store, "indexes/big.npz")
    loaded = ReferenceIndex.load(store, "indexes/big.npz", dim, approximate_above=1000)
    assert loaded.approximate and len(loaded) == len(grown)
    _, again = loaded.search(queries, 10)
    assert np.mean([len(set(a) & set(b)) / 10 for a, b in zip(again, after, strict=True)]) >= 0.95
    # An exact index saved small becomes approximate when loaded under a lower limit.
    exact.save(store, "indexes/exact.npz")
    assert ReferenceIndex.load(store, "indexes/exact.npz", dim, approximate_above=100).approximate
    assert not ReferenceIndex.load(store, "indexes/exact.npz", dim).approximate


def test_physical_cues_travel_with_their_references(tmp_path: Path) -> None:
    """Cues are kept per reference, leave with it, survive the store, and an index saved
    without cues loads with none (to be back-filled) rather than failing."""
    rng = np.random.default_rng(1)
    vectors = _unit(rng.normal(size=(6, 8)))
    cues = np.column_stack([np.linspace(0.5, 0.8, 6), np.full((6, 3), 130.0)]).astype(np.float32)
    index = ReferenceIndex(8)
    index.add(np.arange(6), vectors, np.array([1, 1, 1, 2, 2, 2]), np.arange(6), ["s"] * 6, cues)
    index.remove([0])
    table, types = index.cue_table()
    assert len(table) == 5 and sorted(types.tolist()) == [1, 1, 2, 2, 2]
    store = LocalStore(tmp_path / "store")
    index.save(store, "idx.npz")
    loaded = ReferenceIndex.load(store, "idx.npz", 8)
    assert set(loaded.cues_of) == {1, 2, 3, 4, 5}
    assert np.allclose(loaded.cues_of[5], cues[5])

    bare = ReferenceIndex(8)
    bare.add(np.arange(3), vectors[:3], np.array([1, 1, 2]), np.arange(3), ["s"] * 3)
    bare.save(store, "bare.npz")
    reloaded = ReferenceIndex.load(store, "bare.npz", 8)
    assert len(reloaded) == 3 and reloaded.cues_of == {}
    reloaded.set_cues([0, 1, 2], cues[:3])
    assert len(reloaded.cue_table()[0]) == 3


def test_shards_by_collection_search_merge_and_save_apart(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    dim, n = 32, 600
    vectors = _unit(rng.normal(size=(n, dim)))
    collections = [("RRC", "RPC I", "")[i % 3] for i in range(n)]
    args = (np.arange(n), vectors, np.arange(n) % 7, np.arange(n), [f"s{i}" for i in range(n)])
    sharded, single = ReferenceIndex(dim), ReferenceIndex(dim)
    sharded.add(*args, shards=collections)
    single.add(*args)
    assert sharded.shards == ["", "RPC I", "RRC"]
    queries = _unit(vectors[:50] + rng.normal(scale=0.3, size=(50, dim)))
    merged, alone = sharded.search(queries, 10), single.search(queries, 10)
    np.testing.assert_array_equal(merged[1], alone[1])  # the merge is the exact top 10
    np.testing.assert_allclose(merged[0], alone[0], atol=1e-5)
    _, only = sharded.search(queries, 10, shards=["RRC"])
    assert {collections[i] for i in only.ravel()} == {"RRC"}

    store = LocalStore(tmp_path)
    sharded.save(store, "indexes/s.npz")
    files = lambda: {k for k in store.list("indexes/") if ".shards/" in k}  # noqa: E731
    first = files()
    assert len(first) == 3
    # A reference joins one collection: only that shard's file is written again.
    extra = _unit(rng.normal(size=(1, dim)))
    sharded.add(np.array([n]), extra, np.array([1]), np.array([n]), ["new"], shards=["RRC"])
    sharded.save(store, "indexes/s.npz")
    second = files()
    assert len(second) == 3 and len(first & second) == 2
    # A collection emptied loses its file; a moved reference follows its collection.
    sharded.remove([i for i in range(n) if collections[i] == ""])
    sharded.add(np.array([1]), vectors[1:2], np.array([1]), np.array([1]), ["s1"], shards=["RRC"])
    sharded.save(store, "indexes/s.npz")
    assert len(files()) == 2
    again = ReferenceIndex.load(store, "indexes/s.npz", dim)
    assert again.shards == ["RPC I", "RRC"] and again.shard_of[1] == "RRC"
    assert again.type_of == sharded.type_of
    np.testing.assert_array_equal(again.search(queries, 5)[1], sharded.search(queries, 5)[1])


def test_cues_measured_another_way_are_dropped_to_be_measured_again(tmp_path: Path) -> None:
    """An index saved before ``CUE_VERSION`` changed loads its references without their cues,
    so that sync measures them again instead of comparing them with differently measured ones."""
    import io

    rng = np.random.default_rng(2)
    cues = np.full((4, 4), 130.0, np.float32)
    index = ReferenceIndex(8)
    index.add(
        np.arange(4), _unit(rng.normal(size=(4, 8))), np.arange(4), np.arange(4), ["s"] * 4, cues
    )
    store = LocalStore(tmp_path / "store")
    index.save(store, "idx.npz")
    assert set(ReferenceIndex.load(store, "idx.npz", 8).cues_of) == {0, 1, 2, 3}

    arrays = dict(np.load(io.BytesIO(store.get("idx.npz"))))
    del arrays["cue_version"]  # as saved by the first version of the cues
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    store.put("idx.npz", buffer.getvalue())
    older = ReferenceIndex.load(store, "idx.npz", 8)
    assert len(older) == 4 and older.cues_of == {}


def test_an_index_saved_before_shards_still_loads(tmp_path: Path) -> None:
    import io

    import faiss

    rng = np.random.default_rng(3)
    vectors = _unit(rng.normal(size=(20, 8)))
    flat = faiss.IndexIDMap2(faiss.IndexFlatIP(8))
    flat.add_with_ids(vectors, np.arange(20, dtype=np.int64))
    buffer = io.BytesIO()
    np.savez(  # the one-file layout of earlier versions
        buffer,
        index=faiss.serialize_index(flat),
        ids=np.arange(20),
        types=np.arange(20) % 4,
        specimens=np.arange(20),
        shas=np.array([f"s{i}" for i in range(20)], dtype="U64"),
        dim=np.array(8),
    )
    store = LocalStore(tmp_path)
    store.put("indexes/old.npz", buffer.getvalue())
    old = ReferenceIndex.load(store, "indexes/old.npz", 8)
    assert len(old) == 20 and old.search(vectors[:3], 1)[1].ravel().tolist() == [0, 1, 2]
    old.save(store, "indexes/old.npz")  # rewritten in the sharded layout
    assert len(ReferenceIndex.load(store, "indexes/old.npz", 8)) == 20
