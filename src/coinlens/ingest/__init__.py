"""Ingest: folders and CSV manifests into the object store and the catalogue, idempotently."""

from coinlens.ingest.runner import IngestReport, Outcome, ingest_items
from coinlens.ingest.sources import (
    IMAGE_SUFFIXES,
    IngestError,
    IngestItem,
    Problem,
    ScanResult,
    check_dates,
    is_bucket_url,
    parse_measures,
    parse_type_descriptors,
    read_manifest,
    scan_bucket,
    scan_folder,
    scan_path,
    side_from_name,
)

__all__ = [
    "IMAGE_SUFFIXES",
    "IngestError",
    "IngestItem",
    "IngestReport",
    "Outcome",
    "Problem",
    "ScanResult",
    "check_dates",
    "ingest_items",
    "is_bucket_url",
    "parse_measures",
    "parse_type_descriptors",
    "read_manifest",
    "scan_bucket",
    "scan_folder",
    "scan_path",
    "side_from_name",
]
