"""Ingest: folders and CSV manifests into the object store and the catalogue, idempotently."""

from coinlens.ingest.runner import IngestReport, Outcome, ingest_items
from coinlens.ingest.sources import (
    IMAGE_SUFFIXES,
    IngestError,
    IngestItem,
    Problem,
    ScanResult,
    is_bucket_url,
    read_manifest,
    scan_bucket,
    scan_folder,
    scan_path,
)

__all__ = [
    "IMAGE_SUFFIXES",
    "IngestError",
    "IngestItem",
    "IngestReport",
    "Outcome",
    "Problem",
    "ScanResult",
    "ingest_items",
    "is_bucket_url",
    "read_manifest",
    "scan_bucket",
    "scan_folder",
    "scan_path",
]
