"""Vector index over reference images (faiss), incremental, sharded by collection, saved in the
object store."""

from coinlens.index.references import DEFAULT_SHARD, ReferenceIndex

__all__ = ["DEFAULT_SHARD", "ReferenceIndex"]
