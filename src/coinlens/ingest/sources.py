"""Where ingest items come from: a folder tree whose folders are labels, or a CSV manifest.

Each source turns its input into :class:`IngestItem` records plus the problems it found on the
way (a bad manifest row, a missing file); nothing is written here.
"""

from __future__ import annotations

import csv
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlparse

from coinlens.catalog import SIDES, SPECIMEN_MEASURES, TYPE_CONCEPTS, TYPE_DESCRIPTORS
from coinlens.config import Settings
from coinlens.storage import ObjectStore, StoreError, open_store

IMAGE_SUFFIXES = {
    ".jpg",
    ".jpeg",
    ".jpe",
    ".png",
    ".tif",
    ".tiff",
    ".webp",
    ".heic",
    ".heif",
    ".bmp",
    ".gif",
}
IGNORED_NAMES = {"Thumbs.db", "desktop.ini", "manifest.csv", "LICENSE", "NOTICE.txt", "README.md"}

REQUIRED_COLUMNS = ("image", "accession", "side")
TYPE_COLUMNS = ("type_uri", *TYPE_DESCRIPTORS)
SPECIMEN_COLUMNS = SPECIMEN_MEASURES
KNOWN_COLUMNS = {*REQUIRED_COLUMNS, "type_reference", *TYPE_COLUMNS, *SPECIMEN_COLUMNS}


class IngestError(ValueError):
    """The whole input is unusable (missing folder, manifest without a required column)."""


@dataclass
class IngestItem:
    """One image to ingest and everything known about the coin it shows."""

    path: Path
    origin: str  # where to point the user in messages: a path or "manifest.csv line 7"
    accession: str
    side: str = "unknown"
    status: str = "backlog"
    type_reference: str | None = None
    type_fields: dict[str, Any] = field(default_factory=dict)
    specimen_fields: dict[str, Any] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)
    batch: str | None = None
    source: str | None = None  # what Image.source records, if not ``path`` (an upload's name)
    fetch: Callable[[], bytes] | None = field(default=None, repr=False, compare=False)
    # ``fetch`` reads the photo from where it lives (an object in a bucket) instead of ``path``.


@dataclass
class Problem:
    """Something wrong with one input (a file or a row), reported and counted, never fatal."""

    origin: str
    message: str

    def __str__(self) -> str:
        return f"{self.origin}: {self.message}"


@dataclass
class ScanResult:
    items: list[IngestItem]
    problems: list[Problem]
    ignored: list[Path]


def _is_hidden(name: str) -> bool:
    return name.startswith(".") or name in IGNORED_NAMES


def scan_folder(
    root: Path,
    *,
    status: str | None = None,
    batch: str | None = None,
    sides_from_names: bool = False,
) -> ScanResult:
    """Items for every image file below ``root``.

    The label of an image is its parent folder's path relative to ``root`` ("2e", "han/wuzhu");
    images directly in ``root`` have none and become backlog specimens, as does everything when
    ``status`` is "backlog" (the folder label is then kept in the notes, so the backlog can still
    be scored against it). The accession is ``root``'s name plus the path below it, which is stable
    across re-runs and machines. ``sides_from_names``: see :func:`side_from_name`.
    """
    if not root.exists():
        raise IngestError(f"{root}: no such file or folder")
    if not root.is_dir():
        raise IngestError(f"{root}: not a folder (give a folder of images, or --manifest FILE.csv)")
    items: list[IngestItem] = []
    problems: list[Problem] = []
    ignored: list[Path] = []
    root = root.resolve()

    def on_error(exc: OSError) -> None:
        problems.append(Problem(exc.filename or str(root), f"cannot list folder ({exc.strerror})"))

    visited: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root, onerror=on_error, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in visited:  # a link back up the tree: do not loop
            dirnames[:] = []
            continue
        visited.add(real)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if _is_hidden(name):
                continue
            path = Path(dirpath) / name
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                ignored.append(path)
                continue
            relative = PurePosixPath(path.relative_to(root).as_posix())
            items.append(
                _labelled_item(
                    IngestItem(path=path, origin=str(path), accession=""),
                    root.name,
                    relative,
                    status,
                    batch,
                    sides_from_names,
                )
            )
    return ScanResult(items, problems, ignored)


# A side named at the end of a file's name, after "_", "-", "." or a space: "A1_obv.jpg",
# "A1-r.jpg", "1944.100.12.reverse.tif" (any case).
SIDE_IN_NAME = re.compile(r"^(?P<coin>.+?)[-_. ](?P<side>obverse|obv|o|reverse|rev|r)$", re.I)


SIDE_WORDS = {"obv": "obverse", "o": "obverse", "rev": "reverse", "r": "reverse"}


def read_side(raw: str) -> str:
    """A manifest's side: one of ``SIDES`` or an abbreviation (obv, o, rev, r; any case);
    blank is "unknown". ValueError names what was given."""
    text = (raw or "unknown").strip().lower()
    side = SIDE_WORDS.get(text, text)
    if side not in SIDES:
        raise ValueError(f"side {raw!r} is not one of {', '.join(SIDES)} (or obv, rev)")
    return side


def side_from_name(stem: str) -> tuple[str, str] | None:
    """(the coin's name, "obverse" or "reverse") where a file name ends with a side, else None."""
    match = SIDE_IN_NAME.match(stem)
    if match is None:
        return None
    side = match["side"].lower()
    return match["coin"], SIDE_WORDS.get(side, side)


def _labelled_item(
    item: IngestItem,
    root_name: str,
    relative: PurePosixPath,
    status: str | None,
    batch: str | None,
    sides_from_names: bool = False,
) -> IngestItem:
    """Label, status, accession and batch of an image at ``relative`` below a root folder.
    ``sides_from_names``: a file whose name ends with a side is that side of the coin named
    before it, so the files of one coin make one specimen (accession without the side)."""
    label = relative.parent.as_posix()
    label = None if label == "." else label
    item.accession = f"{root_name}/{relative.as_posix()}"
    named = side_from_name(relative.stem) if sides_from_names else None
    if named is not None:
        item.accession = f"{root_name}/{relative.with_name(named[0]).as_posix()}"
        item.side = named[1]
    item.batch = batch or root_name
    if label and status != "backlog":
        item.status = "catalogued"
        item.type_reference = label
    else:
        item.status = "backlog"
        if label:
            item.notes["folder_label"] = label
    return item


def is_bucket_url(text: str) -> bool:
    return text.startswith("s3://")


@dataclass(frozen=True)
class BucketObject:
    """Reads one object of a bucket: a picklable ``IngestItem.fetch``, so that photos listed on
    the driver can be read by Ray workers (each process opens the bucket once)."""

    url: str
    key: str
    settings: Settings

    def __call__(self) -> bytes:
        return _bucket(self.url, self.settings).get(self.key)


_BUCKETS: dict[tuple[str, ...], ObjectStore] = {}


def _bucket(url: str, settings: Settings) -> ObjectStore:
    """The bucket at ``url`` with these settings' endpoint and credentials, opened once."""
    where = (settings.s3_endpoint_url, settings.s3_region, settings.s3_access_key_id)
    key = (url, *map(str, where))
    if key not in _BUCKETS:
        _BUCKETS[key] = open_store(url, settings)
    return _BUCKETS[key]


def scan_bucket(
    url: str,
    settings: Settings,
    *,
    status: str | None = None,
    batch: str | None = None,
    sides_from_names: bool = False,
) -> ScanResult:
    """Items for every image object below ``s3://bucket/prefix``, labelled like folders.

    The listing is paginated and nothing is downloaded here: each item fetches its own object
    when ingest reads it, so a bucket of any size never needs a local copy.
    """
    parsed = urlparse(url)
    prefix = parsed.path.strip("/")
    root_name = PurePosixPath(prefix).name or parsed.netloc
    try:
        keys = sorted(_bucket(url, settings).list())
    except StoreError as exc:
        raise IngestError(str(exc)) from None
    items: list[IngestItem] = []
    ignored: list[Path] = []
    for key in keys:
        relative = PurePosixPath(key)
        if any(_is_hidden(part) for part in relative.parts):
            continue
        if relative.suffix.lower() not in IMAGE_SUFFIXES:
            ignored.append(Path(key))
            continue
        object_url = f"{url.rstrip('/')}/{key}"
        item = IngestItem(
            path=Path(key),
            origin=object_url,
            accession="",
            source=object_url,
            fetch=BucketObject(url, key, settings),
        )
        items.append(_labelled_item(item, root_name, relative, status, batch, sides_from_names))
    if not items and not ignored:
        raise IngestError(f"{url}: no objects found")
    return ScanResult(items, [], ignored)


def scan_path(
    path: Path,
    *,
    status: str | None = None,
    batch: str | None = None,
    sides_from_names: bool = False,
) -> ScanResult:
    """A folder as in :func:`scan_folder`, or a single image file (accession: its folder's name
    and its file name; no label)."""
    if path.is_file():
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            raise IngestError(
                f"{path}: not an image file name ({', '.join(sorted(IMAGE_SUFFIXES))})"
            )
        resolved = path.resolve()
        named = side_from_name(resolved.stem) if sides_from_names else None
        item = IngestItem(
            path=resolved,
            origin=str(path),
            accession=f"{resolved.parent.name}/{named[0] if named else resolved.name}",
            side=named[1] if named else "unknown",
            status="backlog",
            batch=batch or resolved.parent.name,
        )
        return ScanResult([item], [], [])
    return scan_folder(path, status=status, batch=batch, sides_from_names=sides_from_names)


class BadValue(ValueError):
    """A value that cannot be read: what was given, what is wrong, what was expected."""

    def __init__(self, raw: str, problem: str, expected: str) -> None:
        self.raw, self.problem, self.expected = raw, problem, expected
        super().__init__(f"{raw!r} is {problem} ({expected})")

    def in_words(self, label: str) -> str:
        """For a form: "weight: not a number ('abc'; grams, e.g. 3.92)"."""
        return f"{label}: {self.problem} ({self.raw!r}; {self.expected})"


def _read_number(raw: str, *, low: float, high: float, unit: str, example: str) -> float:
    """A number in ``(low, high]``; a decimal comma ("3,92") reads as a point."""
    text = raw.strip()
    if "," in text and "." not in text and text.count(",") == 1:
        text = text.replace(",", ".")
    expected = f"{unit}, e.g. {example}"
    try:
        value = float(text)
    except ValueError:
        raise BadValue(raw, "not a number", expected) from None
    if not math.isfinite(value) or not low < value <= high:
        raise BadValue(raw, "out of range", f"{low:g} to {high:g} {unit}")
    return value


def _read_whole(raw: str, *, low: int, high: int, meaning: str) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        raise BadValue(raw, "not a whole number", meaning) from None
    if not low <= value <= high:
        raise BadValue(raw, "out of range", meaning)
    return value


def _whole(column: str, raw: str, *, low: int, high: int, meaning: str) -> int:
    try:
        return _read_whole(raw, low=low, high=high, meaning=meaning)
    except BadValue as exc:
        raise ValueError(f"{column} {exc}") from None


# The measures' names in words, for a curator's form.
MEASURE_LABELS = {"weight_g": "weight", "diameter_mm": "diameter", "die_axis": "die axis"}
_MEASURE_READERS = {
    "weight_g": lambda raw: _read_number(raw, low=0, high=5000, unit="grams", example="3.92"),
    "diameter_mm": lambda raw: _read_number(
        raw, low=0, high=500, unit="millimetres", example="19.5"
    ),
    # 12 o'clock and 0 o'clock are one axis: stored as 12, so that the same axis is one value
    "die_axis": lambda raw: (
        _read_whole(raw, low=0, high=12, meaning="clock hours 1 to 12; 0 is read as 12") or 12
    ),
}


def check_measures(values: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, BadValue]]:
    """Specimen measures (``SPECIMEN_MEASURES``) read from text, and what is wrong with each
    one that could not be read: every field at once, for a form. Blank ones are left out."""
    fields: dict[str, Any] = {}
    problems: dict[str, BadValue] = {}
    for name, read in _MEASURE_READERS.items():
        if values.get(name):
            try:
                fields[name] = read(values[name])
            except BadValue as exc:
                problems[name] = exc
    return fields, problems


def parse_measures(values: Mapping[str, str]) -> dict[str, Any]:
    """Validated specimen measures (``SPECIMEN_MEASURES``) from text; blank ones are left out.
    ValueError names the first field that cannot be read and the range expected."""
    fields, problems = check_measures(values)
    for name, problem in problems.items():
        raise ValueError(f"{name} {problem}")
    return fields


def read_uri(column: str, raw: str) -> str:
    """An absolute http(s) URI, as a type's or a concept's URI must be ("http://nomisma.org/id/
    ar"); ValueError names ``column`` and what is wrong."""
    text = raw.strip()
    parsed = urlparse(text)
    spaced = any(c.isspace() for c in text)
    if parsed.scheme not in ("http", "https") or not parsed.netloc or spaced:
        raise ValueError(f"{column} {raw!r} is not a URI (http://... or https://...)")
    return text


def parse_type_descriptors(values: Mapping[str, str]) -> dict[str, Any]:
    """Validated type descriptors (``TYPE_DESCRIPTORS``, and the type's own ``uri`` when given)
    from text, as a manifest row or a curator's form gives them; blank ones are left out.
    ValueError names the field."""
    fields: dict[str, Any] = {}
    for name in ("authority", "mint", "denomination", "material"):
        if values.get(name):
            fields[name] = values[name]
    for name in ("uri", *TYPE_CONCEPTS):
        if values.get(name):
            fields[name] = read_uri(name, values[name])
    for name in ("date_from", "date_to"):
        if values.get(name):
            fields[name] = _whole(
                name, values[name], low=-5000, high=3000, meaning="a year, negative for BC"
            )
    return fields


def check_dates(date_from: int | None, date_to: int | None) -> None:
    """A type's dates in order (ValueError otherwise)."""
    if date_from is not None and date_to is not None and date_from > date_to:
        raise ValueError(f"date_from {date_from} is after date_to {date_to}")


def _parse_row(row: dict[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Validated (type fields, specimen fields) of one manifest row; ValueError names the column."""
    type_fields = parse_type_descriptors({k: v for k, v in row.items() if k != "uri"})
    if row.get("type_uri"):
        type_fields["uri"] = read_uri("type_uri", row["type_uri"])
    check_dates(type_fields.get("date_from"), type_fields.get("date_to"))
    return type_fields, parse_measures(row)


def _open_csv(path: Path) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """Header and (line number, row) pairs; the delimiter (, ; tab) is sniffed from the header."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise IngestError(f"{path}: manifest not found") from None
    except UnicodeDecodeError as exc:
        raise IngestError(f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    except OSError as exc:
        raise IngestError(f"{path}: cannot read manifest ({exc.strerror})") from None
    first_line = text.splitlines()[0] if text.strip() else ""
    if not first_line:
        raise IngestError(f"{path}: manifest is empty")
    delimiter = max(",;\t", key=first_line.count)
    reader = csv.reader(text.splitlines(), delimiter=delimiter)
    header = [column.strip().lower() for column in next(reader)]
    rows = []
    for values in reader:
        if not any(value.strip() for value in values):
            continue
        row = {
            column: (values[i].strip() if i < len(values) else "")
            for i, column in enumerate(header)
        }
        rows.append((reader.line_num, row))
    return header, rows


def read_manifest(
    manifest: Path, *, status: str | None = None, batch: str | None = None
) -> ScanResult:
    """Items for every row of a CSV manifest exported from a collection-management system.

    Rows sharing an accession are the sides of one specimen. Columns we do not know are kept in the
    specimen's notes. A row with a bad value is reported with its line number and skipped; a
    missing required column stops everything with :class:`IngestError`.
    """
    header, rows = _open_csv(manifest)
    missing = [column for column in REQUIRED_COLUMNS if column not in header]
    if missing:
        raise IngestError(
            f"{manifest}: missing required column(s) {', '.join(missing)} "
            f"(found: {', '.join(header) or 'none'})"
        )
    base = manifest.resolve().parent
    items: list[IngestItem] = []
    problems: list[Problem] = []
    types_given: dict[str, dict[str, list[int]]] = {}  # accession -> type reference -> lines
    for line, row in rows:
        origin = f"{manifest.name} line {line}"
        try:
            if not row["image"]:
                raise ValueError("image is empty")
            if not row["accession"]:
                raise ValueError("accession is empty")
            side = read_side(row["side"])
            image_path = Path(row["image"])
            if image_path.is_absolute() or ".." in image_path.parts:
                raise ValueError(f"image {row['image']!r} must be a path inside the CSV's folder")
            path = base / image_path
            if not path.is_file():
                raise ValueError(f"image file {row['image']!r} not found")
            type_fields, specimen_fields = _parse_row(row)
        except ValueError as exc:
            problems.append(Problem(origin, f"{exc}; row skipped"))
            continue
        reference = row.get("type_reference") or None
        if reference:
            types_given.setdefault(row["accession"], {}).setdefault(reference, []).append(line)
        if status == "backlog" or (status is None and not reference):
            item_status = "backlog"
        else:
            item_status = "catalogued"
        if item_status == "catalogued" and not reference:
            problems.append(
                Problem(origin, "--status catalogued needs a type_reference; row skipped")
            )
            continue
        notes = {
            column: value for column, value in row.items() if column not in KNOWN_COLUMNS and value
        }
        if item_status == "backlog" and reference:
            notes["type_reference"] = reference
        items.append(
            IngestItem(
                path=path,
                origin=f"{origin} ({row['image']})",
                accession=row["accession"],
                side=side,
                status=item_status,
                type_reference=reference if item_status == "catalogued" else None,
                type_fields=type_fields if item_status == "catalogued" else {},
                specimen_fields=specimen_fields,
                notes=notes,
                batch=batch or manifest.stem,
            )
        )
    conflicting = {a: given for a, given in types_given.items() if len(given) > 1}
    for accession, given in conflicting.items():
        told = "; ".join(
            f"{reference!r} (line{'s' if len(lines) > 1 else ''} {', '.join(map(str, lines))})"
            for reference, lines in given.items()
        )
        problems.append(
            Problem(
                f"{manifest.name} accession {accession!r}",
                f"its rows give different types: {told}; all its rows skipped (one coin has "
                "one type: correct the manifest)",
            )
        )
    items = [item for item in items if item.accession not in conflicting]
    return ScanResult(items, problems, [])
