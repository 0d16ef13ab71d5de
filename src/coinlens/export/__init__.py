"""Catalogue records out: CSV for collection-management systems, Nomisma JSON-LD, IIIF manifests."""

from coinlens.export.records import EXPORT_STATUSES, FORMATS, ExportRecord, export_records
from coinlens.export.writers import (
    iiif_collection,
    iiif_manifest,
    jsonld_document,
    write_csv,
    write_export,
)

__all__ = [
    "EXPORT_STATUSES",
    "FORMATS",
    "ExportRecord",
    "export_records",
    "iiif_collection",
    "iiif_manifest",
    "jsonld_document",
    "write_csv",
    "write_export",
]
