"""The export formats, written as streams so a catalogue of any size leaves in bounded memory.

- csv: one row per specimen, flat columns.
- jsonld: Nomisma.org (http://nomisma.org/ontology#), one ``nmo:NumismaticObject`` per specimen
  linked to its type (``nmo:hasTypeSeriesItem``), with weight, diameter, die axis and the obverse
  and reverse as ``nmo:hasObverse``/``nmo:hasReverse`` nodes carrying ``foaf:depiction``; each
  type as an ``nmo:TypeSeriesItem`` linking the nomisma.org concepts its record names
  (authority, mint, denomination, material) and its dates as ``xsd:gYear``; what an import
  kept beside the record (a hoard lot) as ``dcterms:description``.
- iiif: IIIF Presentation 3 (https://iiif.io/api/presentation/3.0/): a Manifest per specimen with
  one Canvas per side, and a Collection of them all.
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

from coinlens.catalog import ATTRIBUTION_LEVELS, SPECIMEN_MEASURES, TYPE_DESCRIPTORS, Catalog
from coinlens.config import Settings
from coinlens.export.records import ExportImage, ExportRecord, export_records
from coinlens.storage import atomic_open, open_store

COLLECTION = "collection.json"

CSV_COLUMNS = [
    "accession",
    "status",
    "type_reference",
    "type_uri",
    *TYPE_DESCRIPTORS,
    *SPECIMEN_MEASURES,
    *(f"attributed_{level}" for level in ATTRIBUTION_LEVELS),
    "notes",
    "fields",
    "obverse_image",
    "reverse_image",
    "image_urls",
    "reviewer",
    "reviewed_at",
    "record_url",
]
JSONLD_CONTEXT = {
    "nmo": "http://nomisma.org/ontology#",
    "dcterms": "http://purl.org/dc/terms/",
    "foaf": "http://xmlns.com/foaf/0.1/",
    "skos": "http://www.w3.org/2004/02/skos/core#",
    "void": "http://rdfs.org/ns/void#",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
}
# the Nomisma ontology's property for each of a type's concepts (``TYPE_CONCEPTS``)
TYPE_CONCEPT_PROPERTIES = {
    "authority_uri": "nmo:hasAuthority",
    "mint_uri": "nmo:hasMint",
    "denomination_uri": "nmo:hasDenomination",
    "material_uri": "nmo:hasMaterial",
}
IIIF_CONTEXT = "http://iiif.io/api/presentation/3/context.json"


class Links:
    """The URLs records point to, under the server's public address."""

    def __init__(self, base_url: str) -> None:
        self.base = base_url.rstrip("/")

    def media(self, key: str | None) -> str | None:
        return f"{self.base}/media/{quote(key)}" if key else None

    def record(self, record: ExportRecord) -> str:
        return f"{self.base}/specimens/{record.specimen_id}"

    def type_uri(self, record: ExportRecord) -> str | None:
        coin_type = record.coin_type
        if coin_type is None:
            return None
        return coin_type.uri or f"{self.base}/types/{coin_type.id}"

    def manifest(self, specimen_id: int) -> str:
        return f"{self.base}/iiif/{specimen_id}/manifest.json"

    def collection(self) -> str:
        return f"{self.base}/iiif/collection.json"


def csv_row(record: ExportRecord, links: Links) -> dict[str, Any]:
    coin_type = record.coin_type
    obverse, reverse = record.side("obverse"), record.side("reverse")
    return {
        "accession": record.accession,
        "status": record.status,
        "type_reference": coin_type.reference if coin_type else None,
        "type_uri": links.type_uri(record),
        **{name: getattr(coin_type, name) if coin_type else None for name in TYPE_DESCRIPTORS},
        **{name: getattr(record, name) for name in SPECIMEN_MEASURES},
        **{f"attributed_{level}": record.attribution.get(level) for level in ATTRIBUTION_LEVELS},
        "notes": record.notes,
        "fields": json.dumps(record.fields, ensure_ascii=False, sort_keys=True)
        if record.fields
        else None,
        "obverse_image": links.media(obverse.key) if obverse else None,
        "reverse_image": links.media(reverse.key) if reverse else None,
        "image_urls": " ".join(links.media(image.key) or "" for image in record.images),
        "reviewer": record.reviewer,
        "reviewed_at": record.reviewed_at.isoformat() if record.reviewed_at else None,
        "record_url": links.record(record),
    }


def csv_chunks(records: Iterable[ExportRecord], links: Links) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS)
    writer.writeheader()
    for number, record in enumerate(records):
        writer.writerow(csv_row(record, links))
        if number % 200 == 199:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def write_csv(path: Path, records: Iterable[ExportRecord], links: Links) -> None:
    with atomic_open(path, "w", encoding="utf-8", newline="") as handle:
        for chunk in csv_chunks(records, links):
            handle.write(chunk)


def _typed(value: float | int, datatype: str) -> dict[str, Any]:
    return {"@value": str(value), "@type": f"xsd:{datatype}"}


def _side_node(record_url: str, name: str, image: ExportImage, links: Links) -> dict[str, Any]:
    return {
        "@id": f"{record_url}#{name}",
        "foaf:depiction": {"@id": links.media(image.key)},
        **(
            {"foaf:thumbnail": {"@id": links.media(image.thumbnail_key)}}
            if image.thumbnail_key
            else {}
        ),
    }


def jsonld_object(record: ExportRecord, links: Links) -> dict[str, Any]:
    """One ``nmo:NumismaticObject``."""
    url = links.record(record)
    node: dict[str, Any] = {
        "@id": url,
        "@type": "nmo:NumismaticObject",
        "dcterms:identifier": record.accession,
        "dcterms:title": record.accession,
        "void:inDataset": {"@id": links.base + "/"},
    }
    type_uri = links.type_uri(record)
    if type_uri:
        node["nmo:hasTypeSeriesItem"] = {"@id": type_uri}
    if record.weight_g is not None:
        node["nmo:hasWeight"] = _typed(record.weight_g, "decimal")
    if record.diameter_mm is not None:
        node["nmo:hasDiameter"] = _typed(record.diameter_mm, "decimal")
    if record.die_axis is not None:
        node["nmo:hasAxis"] = _typed(record.die_axis, "integer")
    if record.notes:
        node["skos:note"] = record.notes
    recorded = [f"{name}: {value}" for name, value in sorted(record.fields.items())]
    if recorded:  # what an import kept beside the record ("lot: 1944.100")
        node["dcterms:description"] = recorded[0] if len(recorded) == 1 else recorded
    for name, prop in (("obverse", "nmo:hasObverse"), ("reverse", "nmo:hasReverse")):
        image = record.side(name)
        if image is not None:
            node[prop] = _side_node(url, name, image, links)
    others = [i for i in record.images if i.side not in ("obverse", "reverse")]
    if others:
        node["foaf:depiction"] = [{"@id": links.media(i.key)} for i in others]
    return node


def jsonld_type(record: ExportRecord, links: Links) -> dict[str, Any]:
    """The ``nmo:TypeSeriesItem`` a specimen points to (label and what the catalogue knows)."""
    coin_type = record.coin_type
    node: dict[str, Any] = {
        "@id": links.type_uri(record),
        "@type": "nmo:TypeSeriesItem",
        "skos:prefLabel": coin_type.reference,
    }
    if coin_type.description:
        node["skos:definition"] = coin_type.description
    for name, prop in TYPE_CONCEPT_PROPERTIES.items():
        uri = getattr(coin_type, name)
        if uri:
            node[prop] = {"@id": uri}
    for name, prop in (("date_from", "nmo:hasStartDate"), ("date_to", "nmo:hasEndDate")):
        year = getattr(coin_type, name)
        if year is not None:
            node[prop] = {"@value": gyear(year), "@type": "xsd:gYear"}
    return node


def years_text(date_from: int | None, date_to: int | None) -> str:
    """Dates as a catalogue prints them: "118-107 BC", "AD 337-340", "AD 337"."""

    def year(value: int | None) -> str:
        return "?" if value is None else str(abs(value))

    if date_from == date_to or date_to is None or date_from is None:
        one = date_from if date_from is not None else date_to
        return f"{year(one)} BC" if one is not None and one < 0 else f"AD {year(one)}"
    if date_to < 0:
        return f"{year(date_from)}-{year(date_to)} BC"
    if date_from < 0:
        return f"{year(date_from)} BC - AD {year(date_to)}"
    return f"AD {year(date_from)}-{year(date_to)}"


def gyear(year: int) -> str:
    """A year as ``xsd:gYear`` writes it, four digits at least and BC negative: -118 -> "-0118"."""
    return f"{'-' if year < 0 else ''}{abs(year):04d}"


def jsonld_chunks(records: Iterable[ExportRecord], links: Links) -> Iterator[str]:
    """A JSON-LD document with ``@graph``: the objects, then the types they use."""
    yield '{"@context": ' + json.dumps(JSONLD_CONTEXT) + ', "@graph": ['
    types: dict[str, dict[str, Any]] = {}
    first = True
    for record in records:
        yield ("" if first else ",\n") + json.dumps(
            jsonld_object(record, links), ensure_ascii=False
        )
        first = False
        if record.coin_type is not None:
            types.setdefault(links.type_uri(record), jsonld_type(record, links))
    for node in types.values():
        yield ("" if first else ",\n") + json.dumps(node, ensure_ascii=False)
        first = False
    yield "]}\n"


def jsonld_document(records: Iterable[ExportRecord], links: Links) -> dict[str, Any]:
    return json.loads("".join(jsonld_chunks(records, links)))


def _label(text: str) -> dict[str, list[str]]:
    return {"none": [text]}


def _entry(label: str, value: Any) -> dict[str, Any]:
    return {"label": {"en": [label]}, "value": _label(str(value))}


def iiif_manifest(record: ExportRecord, links: Links) -> dict[str, Any]:
    """A IIIF Presentation 3 Manifest: one Canvas per image (side) of the specimen."""
    manifest_id = links.manifest(record.specimen_id)
    base = manifest_id.rsplit("/", 1)[0]
    coin_type = record.coin_type
    metadata = [_entry("Accession", record.accession), _entry("Status", record.status)]
    if coin_type is not None:
        metadata.append(_entry("Type", coin_type.reference))
        for name in ("authority", "mint", "denomination", "material"):
            if getattr(coin_type, name):
                metadata.append(_entry(name.capitalize(), getattr(coin_type, name)))
        if coin_type.date_from is not None or coin_type.date_to is not None:
            metadata.append(_entry("Date", years_text(coin_type.date_from, coin_type.date_to)))
    for label, value in (
        ("Weight (g)", record.weight_g),
        ("Diameter (mm)", record.diameter_mm),
        ("Die axis", record.die_axis),
    ):
        if value is not None:
            metadata.append(_entry(label, value))
    canvases = []
    for number, image in enumerate(record.images, start=1):
        canvas_id = f"{base}/canvas/{number}"
        canvases.append(
            {
                "id": canvas_id,
                "type": "Canvas",
                "label": {"en": [image.side]},
                "width": image.width,
                "height": image.height,
                "items": [
                    {
                        "id": f"{base}/page/{number}",
                        "type": "AnnotationPage",
                        "items": [
                            {
                                "id": f"{base}/annotation/{number}",
                                "type": "Annotation",
                                "motivation": "painting",
                                "target": canvas_id,
                                "body": {
                                    "id": links.media(image.key),
                                    "type": "Image",
                                    "format": "image/jpeg",
                                    "width": image.width,
                                    "height": image.height,
                                },
                            }
                        ],
                    }
                ],
            }
        )
    manifest: dict[str, Any] = {
        "@context": IIIF_CONTEXT,
        "id": manifest_id,
        "type": "Manifest",
        "label": _label(record.accession),
        "metadata": metadata,
        "homepage": [
            {
                "id": links.record(record),
                "type": "Text",
                "label": _label(record.accession),
                "format": "text/html",
            }
        ],
        "items": canvases,
    }
    if coin_type is not None:
        manifest["summary"] = _label(coin_type.reference)
    thumbnail = next((i.thumbnail_key for i in record.images if i.thumbnail_key), None)
    if thumbnail:
        manifest["thumbnail"] = [
            {"id": links.media(thumbnail), "type": "Image", "format": "image/jpeg"}
        ]
    return manifest


def iiif_collection(entries: Iterable[tuple[int, str]], links: Links) -> dict[str, Any]:
    """The Collection of every manifest, from (specimen id, accession) pairs."""
    return {
        "@context": IIIF_CONTEXT,
        "id": links.collection(),
        "type": "Collection",
        "label": {"en": ["coinlens collection"]},
        "items": [
            {
                "id": links.manifest(specimen_id),
                "type": "Manifest",
                "label": _label(accession),
            }
            for specimen_id, accession in entries
        ],
    }


def write_export(
    catalog: Catalog,
    fmt: str,
    out: str | Path,
    base_url: str,
    status: str = "catalogued",
    settings: Settings | None = None,
) -> int:
    """Write ``fmt`` to ``out`` (a file; a folder for iiif), or to an S3 URL
    (``s3://bucket/prefix/file.csv``; for iiif ``s3://bucket/prefix``), with endpoint and
    credentials from ``settings``. Return how many specimens."""
    if str(out).startswith("s3://"):
        return _write_to_bucket(catalog, fmt, str(out), base_url, status, settings)
    out = Path(out)
    links = Links(base_url)
    count = 0

    def counted() -> Iterator[ExportRecord]:
        nonlocal count
        for record in export_records(catalog, status):
            count += 1
            yield record

    if fmt == "csv":
        write_csv(out, counted(), links)
    elif fmt == "jsonld":
        with atomic_open(out, "w", encoding="utf-8") as handle:
            for chunk in jsonld_chunks(counted(), links):
                handle.write(chunk)
    elif fmt == "iiif":
        out.mkdir(parents=True, exist_ok=True)
        entries = []
        for record in counted():
            folder = out / str(record.specimen_id)
            folder.mkdir(exist_ok=True)
            with atomic_open(folder / "manifest.json", "w", encoding="utf-8") as handle:
                json.dump(iiif_manifest(record, links), handle, ensure_ascii=False, indent=1)
            entries.append((record.specimen_id, record.accession))
        with atomic_open(out / COLLECTION, "w", encoding="utf-8") as handle:
            json.dump(iiif_collection(entries, links), handle, ensure_ascii=False, indent=1)
    else:
        raise ValueError(f"format {fmt!r}: use csv, jsonld or iiif")
    return count


def _write_to_bucket(
    catalog: Catalog, fmt: str, url: str, base_url: str, status: str, settings: Settings | None
) -> int:
    """Write the export to a scratch folder, then upload it, streamed (multipart when large).

    Each object appears whole (S3 PUTs are atomic); for iiif the collection goes last, so a
    reader never finds it pointing at a manifest not yet there.
    """
    if fmt == "iiif":
        store_url, name = url.rstrip("/"), None
    else:
        store_url, _, name = url.rstrip("/").rpartition("/")
        if not name or store_url == "s3:/":
            raise ValueError(f"{url}: name the object to write, as s3://bucket/prefix/file.{fmt}")
    store = open_store(store_url, settings)
    store.ensure_ready()
    with tempfile.TemporaryDirectory(prefix="coinlens-export-") as scratch:
        local = Path(scratch) / (name or "iiif")
        count = write_export(catalog, fmt, local, base_url, status)
        if name:
            store.put_file(name, local)
            return count
        files = sorted(p for p in local.rglob("*") if p.is_file() and p.name != COLLECTION)
        for path in [*files, local / COLLECTION]:
            store.put_file(path.relative_to(local).as_posix(), path)
    return count
