"""Vector index over reference images (faiss), incremental, saved in the object store."""

from coinlens.index.references import ReferenceIndex

__all__ = ["ReferenceIndex"]
