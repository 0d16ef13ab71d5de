"""Reference search at scale: exact inner product vs HNSW (``ReferenceIndex`` past its exact
limit, built incrementally), on synthetic unit vectors of a trained model's width (``--dim``:
1280, the fine-tuned trunk's pooled features; 256 for models saved before that).

For 10k, 100k and 1M references (``--sizes``): build time, memory of the index, query latency
p50/p95 (one query at a time, as identify's verification loop asks) and batch throughput, and
recall@10 of the approximate index against exact search. Prints and writes JSON
(``bench/results/index.json``).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import faiss
import numpy as np

from coinlens.index import DEFAULT_SHARD, ReferenceIndex
from coinlens.storage import atomic_write

REPO = Path(__file__).resolve().parents[1]
DIM = 1280


def unit_vectors(n: int, rng: np.random.Generator, centres: np.ndarray) -> np.ndarray:
    """Clustered like real embeddings: points scattered around type centres."""
    labels = rng.integers(0, len(centres), n)
    vectors = centres[labels] + rng.normal(scale=0.6, size=(n, centres.shape[1])).astype(np.float32)
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def latency(search, queries: np.ndarray) -> tuple[float, float]:
    times = []
    for query in queries:
        started = time.perf_counter()
        search(query[None, :])
        times.append((time.perf_counter() - started) * 1000)
    return float(np.percentile(times, 50)), float(np.percentile(times, 95))


def run(n: int, queries: int, rng: np.random.Generator, dim: int = DIM) -> dict:
    centres = rng.normal(size=(max(10, n // 50), dim)).astype(np.float32)
    data = unit_vectors(n, rng, centres)
    query = unit_vectors(queries, rng, centres)
    result: dict = {"references": n, "queries": queries}

    started = time.perf_counter()
    exact = ReferenceIndex(dim)
    ids = np.arange(n)
    for start in range(0, n, 100_000):  # incremental, as the catalogue grows
        end = min(n, start + 100_000)
        exact.add(
            ids[start:end],
            data[start:end],
            ids[start:end] % 1000,
            ids[start:end],
            [""] * (end - start),
        )
    result["exact_build_seconds"] = round(time.perf_counter() - started, 2)
    result["exact_memory_mb"] = round(n * dim * 4 / 2**20, 1)
    started = time.perf_counter()
    _, truth = exact.search(query, 10)
    result["exact_batch_queries_per_second"] = round(queries / (time.perf_counter() - started), 1)
    p50, p95 = latency(lambda q: exact.search(q, 10), query[:200])
    result["exact_latency_ms"] = {"p50": round(p50, 3), "p95": round(p95, 3)}

    # coinlens's own approximate path: the same ReferenceIndex past its exact limit (HNSW),
    # grown incrementally as the catalogue grows.
    approximate = ReferenceIndex(dim, approximate_above=0)
    started = time.perf_counter()
    for start in range(0, n, 100_000):
        end = min(n, start + 100_000)
        approximate.add(
            ids[start:end],
            data[start:end],
            ids[start:end] % 1000,
            ids[start:end],
            [""] * (end - start),
        )
    result["hnsw_build_seconds"] = round(time.perf_counter() - started, 2)
    inner = faiss.downcast_index(approximate._shards[DEFAULT_SHARD].index)
    result["hnsw_memory_mb"] = round(len(faiss.serialize_index(inner)) / 2**20, 1)
    for ef in (64, 128):
        inner.hnsw.efSearch = ef
        started = time.perf_counter()
        _, found = approximate.search(query, 10)
        seconds = time.perf_counter() - started
        recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, truth, strict=True)])
        p50, p95 = latency(lambda q: approximate.search(q, 10), query[:200])
        result[f"hnsw_ef{ef}"] = {
            "recall_at_10": round(float(recall), 4),
            "batch_queries_per_second": round(queries / seconds, 1),
            "latency_ms": {"p50": round(p50, 3), "p95": round(p95, 3)},
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--dim", type=int, default=DIM)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "index.json")
    args = parser.parse_args()
    try:
        sizes = [int(s) for s in args.sizes.split(",")]
    except ValueError:
        parser.error(f"--sizes: expected comma-separated whole numbers, got {args.sizes!r}")
    if min(sizes) < 10:
        parser.error(f"--sizes: recall@10 needs at least 10 references, got {min(sizes)}")
    if args.queries < 1 or args.dim < 1:
        parser.error("--queries and --dim must be at least 1")
    rng = np.random.default_rng(0)
    results = {
        "benchmark": "reference index search",
        "dim": args.dim,
        "threads": faiss.omp_get_max_threads(),
        "runs": [],
    }
    for size in sizes:
        run_result = run(size, args.queries, rng, args.dim)
        print(json.dumps(run_result))
        results["runs"].append(run_result)
    text = json.dumps(results, indent=2)
    atomic_write(args.out, text + "\n")


if __name__ == "__main__":
    main()
