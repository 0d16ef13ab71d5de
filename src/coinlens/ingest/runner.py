"""Putting ingest items into the object store and the catalogue, safely and idempotently.

For each item, in this order: read and hash the file, decode and validate it, store the original
and a thumbnail under content-addressed keys, then record type, specimen and image in one database
transaction. A crash between the store and the database leaves only an unreferenced blob that the
re-run reuses; a crash never leaves a row pointing at nothing. Decoding and storing run in a thread
pool; database writes happen in order on the calling thread.
"""

from __future__ import annotations

import gc
import json
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from coinlens.catalog import (
    AccessionAlias,
    Catalog,
    CoinType,
    Image,
    Job,
    Specimen,
    specimen_by_accession,
    specimens_by_accession,
)
from coinlens.catalog.models import utcnow
from coinlens.config import Settings
from coinlens.ingest.sources import IngestItem, Problem
from coinlens.storage import KeyNotFound, ObjectStore, StoreError, content_key, sha256_hex
from coinlens.vision import ImageLoadError, encode_jpeg, load_image, make_thumbnail
from coinlens.vision.localise import Box, Layout, coin_sides, crop_coin, locate_coins

OUTCOMES = ("ingested", "already_present", "failed")


@dataclass
class Outcome:
    """What happened to one item; ``message`` explains a failure or a note worth reading."""

    item: IngestItem
    status: str
    message: str | None = None


@dataclass
class _Part:
    """One coin found in a photo: its accession, side, where it is, and its stored crop."""

    accession: str
    side: str
    box: Box
    layout: str
    crop_key: str
    thumbnail_key: str


@dataclass
class Prepared:
    """A photo read, checked, localised and stored, ready for its database transaction."""

    sha256: str
    key: str
    width: int
    height: int
    format: str
    parts: list[_Part]


@dataclass
class IngestReport:
    """Counts for the summary table and the exit code."""

    found: int = 0
    ingested: int = 0
    coins: int = 0
    already_present: int = 0
    failed: int = 0
    rows_skipped: int = 0
    ignored_files: int = 0
    shared_content: int = 0
    new_types: int = 0
    new_specimens: int = 0
    seconds: float = 0.0
    problems: list[Problem] = field(default_factory=list)
    notes: list[Problem] = field(default_factory=list)
    job_id: int | None = None
    interrupted: bool = False

    @property
    def images_per_second(self) -> float:
        return self.ingested / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "found": self.found,
            "ingested": self.ingested,
            "coins": self.coins,
            "already_present": self.already_present,
            "failed": self.failed,
            "rows_skipped": self.rows_skipped,
            "ignored_files": self.ignored_files,
            "shared_content": self.shared_content,
            "new_types": self.new_types,
            "new_specimens": self.new_specimens,
            "seconds": round(self.seconds, 3),
            "images_per_second": round(self.images_per_second, 2),
            "job_id": self.job_id,
            "interrupted": self.interrupted,
        }


def _read(item: IngestItem, max_bytes: int) -> bytes:
    if item.fetch is not None:
        try:
            data = item.fetch()
        except KeyNotFound:
            raise ImageLoadError("object not found (removed since it was listed)") from None
        except StoreError as exc:
            raise ImageLoadError(f"cannot read object ({exc})") from None
        if len(data) > max_bytes:
            raise ImageLoadError(f"file too large ({len(data):,} bytes; limit {max_bytes:,})")
        return data
    try:
        size = item.path.stat().st_size
        if size > max_bytes:
            raise ImageLoadError(f"file too large ({size:,} bytes; limit {max_bytes:,})")
        return item.path.read_bytes()
    except FileNotFoundError:
        raise ImageLoadError("file not found (removed or a broken link)") from None
    except PermissionError:
        raise ImageLoadError("permission denied (cannot read the file)") from None
    except IsADirectoryError:
        raise ImageLoadError("is a folder, not a file") from None
    except OSError as exc:
        raise ImageLoadError(f"cannot read file ({exc.strerror or exc})") from None


def _plan_parts(item: IngestItem, layout: Layout) -> list[tuple[str, str, Box]]:
    """(accession, side, box) for every coin to record from one photo.

    A tray gives one specimen per coin (accession ``<photo's>#NN``, in reading order); two sides
    side by side or stacked give the obverse and reverse of one specimen, unless the curator
    already said which side the photo shows.
    """
    if layout.kind == "tray":
        return [
            (f"{item.accession}#{index:02d}", "unknown", box)
            for index, box in enumerate(layout.boxes, start=1)
        ]
    return [(item.accession, side, box) for side, box in coin_sides(layout, item.side)]


def _already_there(catalog: Catalog, item: IngestItem, digest: str) -> bool:
    """Whether this photo was already recorded for this accession (or its tray coins, or the
    specimen it was merged into); looked up by the photo's hash, which is indexed."""
    with catalog.reader() as session:
        holders = select(Image.specimen_id).where(Image.sha256 == digest)
        accessions = [
            *session.scalars(select(Specimen.accession).where(Specimen.id.in_(holders))),
            *session.scalars(
                select(AccessionAlias.alias).where(AccessionAlias.specimen_id.in_(holders))
            ),
        ]
    return any(a == item.accession or a.startswith(f"{item.accession}#") for a in accessions)


def prepare_photo(
    item: IngestItem,
    store: ObjectStore,
    settings: Settings,
    already_there: Callable[[IngestItem, str], bool] | None = None,
) -> Prepared | Outcome:
    """Everything before the database write: read, hash, decode, find the coins, store.

    Needs no catalogue (``already_there(item, sha256)`` may skip photos recorded before), so it
    runs as well in a Ray worker as in ingest's thread pool."""
    try:
        data = _read(item, settings.max_file_bytes)
        digest = sha256_hex(data)
        if already_there is not None and already_there(item, digest):
            return Outcome(item, "already_present")
        loaded = load_image(data, max_pixels=settings.max_image_pixels)
        layout = locate_coins(loaded.rgb)
        key = content_key("images", digest, loaded.suffix)
        # Content-addressed: rewriting a key writes the same bytes, so no existence check (which
        # would double the requests to an S3 store for every new image).
        store.put(key, data)
        parts = []
        for accession, side, box in _plan_parts(item, layout):
            crop = crop_coin(loaded.rgb, box)
            crop_bytes = encode_jpeg(crop)
            crop_digest = sha256_hex(crop_bytes)
            crop_key = content_key("crops", crop_digest, ".jpg")
            thumbnail_key = content_key("thumbnails", crop_digest, ".jpg")
            store.put(crop_key, crop_bytes)
            store.put(thumbnail_key, make_thumbnail(crop, settings.thumbnail_size))
            parts.append(_Part(accession, side, box, layout.kind, crop_key, thumbnail_key))
    except ImageLoadError as exc:
        return Outcome(item, "failed", str(exc))
    except StoreError as exc:
        return Outcome(item, "failed", f"cannot store: {exc}")
    return Prepared(digest, key, loaded.width, loaded.height, loaded.format, parts)


def recorded_photos(catalog: Catalog, items: Sequence[IngestItem]) -> dict[str, set[str]]:
    """sha256 of the photos already recorded for each item's accession (or its tray coins', or
    the specimen's it was merged into)."""
    recorded: dict[str, set[str]] = {}
    accessions = sorted({item.accession for item in items})
    with catalog.reader() as session:
        for start in range(0, len(accessions), 200):
            named: dict[int, set[str]] = {}
            for accession, specimen_id in specimens_by_accession(
                session, accessions[start : start + 200]
            ):
                named.setdefault(specimen_id, set()).add(accession.split("#")[0])
            rows = session.execute(
                select(Image.specimen_id, Image.sha256).where(Image.specimen_id.in_(list(named)))
            ).all()
            for specimen_id, digest in rows:
                for accession in named[specimen_id]:
                    recorded.setdefault(accession, set()).add(digest)
    return recorded


@dataclass(frozen=True)
class KnownPhotos:
    """``already_there`` from a snapshot of ``recorded_photos``: picklable, no catalogue needed
    (for workers on other machines). A photo recorded since is caught by the image's unique key
    when its row is written."""

    recorded: dict[str, set[str]]

    def __call__(self, item: IngestItem, digest: str) -> bool:
        return digest in self.recorded.get(item.accession, ())


def _notes_json(notes: dict[str, Any]) -> str | None:
    return json.dumps(notes, ensure_ascii=False, sort_keys=True) if notes else None


def _merge_type(session: Session, item: IngestItem, report: IngestReport) -> CoinType | None:
    if not item.type_reference:
        return None
    coin_type = session.scalar(select(CoinType).where(CoinType.reference == item.type_reference))
    if coin_type is None:
        coin_type = CoinType(reference=item.type_reference, **item.type_fields)
        session.add(coin_type)
        session.flush()
        report.new_types += 1
        return coin_type
    for name, value in item.type_fields.items():
        if getattr(coin_type, name) is None:
            setattr(coin_type, name, value)
    return coin_type


def _merge_specimen(
    session: Session, item: IngestItem, coin_type: CoinType | None, report: IngestReport
) -> Specimen:
    specimen = specimen_by_accession(session, item.accession)
    if specimen is None:
        specimen = Specimen(
            accession=item.accession,
            status=item.status,
            type_id=coin_type.id if coin_type else None,
            notes=_notes_json(item.notes),
            batch=item.batch,
            **item.specimen_fields,
        )
        session.add(specimen)
        session.flush()
        report.new_specimens += 1
        return specimen
    if coin_type is not None and specimen.type_id not in (None, coin_type.id):
        current = session.get(CoinType, specimen.type_id)
        raise ValueError(
            f"accession {item.accession!r} is already type "
            f"{current.reference if current else specimen.type_id!r}, not {coin_type.reference!r}"
        )
    if coin_type is not None and specimen.type_id is None and specimen.status == "backlog":
        specimen.type_id, specimen.status = coin_type.id, "catalogued"
    for name, value in item.specimen_fields.items():
        current_value = getattr(specimen, name)
        if current_value is None:
            setattr(specimen, name, value)
        elif current_value != value:
            report.notes.append(
                Problem(
                    item.origin,
                    f"{name} {value} differs from {current_value} recorded for "
                    f"{item.accession!r}; kept {current_value}",
                )
            )
    if item.notes:
        merged = json.loads(specimen.notes) if specimen.notes else {}
        for name, value in item.notes.items():
            merged.setdefault(name, value)
        specimen.notes = _notes_json(merged)
    return specimen


def _record(
    catalog: Catalog, item: IngestItem, prepared: Prepared, report: IngestReport
) -> Outcome:
    """One transaction for the whole photo: types, specimens, images. All of it or none."""
    for attempt in range(2):
        counts = (report.new_types, report.new_specimens)
        try:
            shared = None
            with catalog.session() as session:
                coin_type = _merge_type(session, item, report)
                for part in prepared.parts:
                    part_item = (
                        item
                        if part.accession == item.accession
                        else replace(item, accession=part.accession, side=part.side)
                    )
                    specimen = _merge_specimen(session, part_item, coin_type, report)
                    shared = shared or session.scalar(
                        select(Specimen.accession)
                        .join(Image, Image.specimen_id == Specimen.id)
                        .where(
                            Image.sha256 == prepared.sha256,
                            Specimen.id != specimen.id,
                            ~Specimen.accession.startswith(f"{item.accession}#"),
                        )
                        .limit(1)
                    )
                    session.add(
                        Image(
                            specimen_id=specimen.id,
                            side=part.side,
                            key=prepared.key,
                            sha256=prepared.sha256,
                            thumbnail_key=part.thumbnail_key,
                            width=prepared.width,
                            height=prepared.height,
                            format=prepared.format,
                            source=item.source or str(item.path),
                            crop={
                                **part.box.as_dict(),
                                "round": part.box.round,
                                "layout": part.layout,
                                "key": part.crop_key,
                            },
                        )
                    )
                # Counted in the same transaction, so an interrupt between commit and return
                # can never leave the job's count behind the catalogue.
                session.execute(
                    update(Job).where(Job.id == report.job_id).values(done=Job.done + 1)
                )
                session.flush()
            report.coins += len(prepared.parts)
            if shared:
                report.shared_content += 1
                report.notes.append(
                    Problem(item.origin, f"same picture as {shared!r} (stored once)")
                )
            return Outcome(item, "ingested")
        except IntegrityError:
            # Another writer created the same type/specimen/image between our read and write:
            # the retry sees it and merges into it.
            report.new_types, report.new_specimens = counts
            if attempt == 1:
                return Outcome(item, "already_present")
        except ValueError as exc:
            report.new_types, report.new_specimens = counts
            return Outcome(item, "failed", str(exc))
    raise AssertionError("unreachable")


def _start_job(catalog: Catalog, target: str, params: dict[str, Any], total: int) -> int:
    with catalog.session() as session:
        stale = session.scalars(
            select(Job).where(Job.kind == "ingest", Job.target == target, Job.state == "running")
        ).all()
        for job in stale:  # killed before it could say so
            job.state, job.message = "interrupted", "process ended without finishing"
        job = Job(kind="ingest", target=target, params=params, total=total)
        session.add(job)
        session.flush()
        return job.id


def _update_job(catalog: Catalog, job_id: int, report: IngestReport, state: str | None) -> None:
    with catalog.session() as session:
        job = session.get(Job, job_id)
        report.ingested = job.done  # the transactional count (see _record)
        job.skipped = report.already_present
        job.failed = report.failed
        if state:
            job.state = state
            job.finished_at = utcnow()
            job.message = json.dumps(report.as_dict())


AlreadyThere = Callable[[IngestItem, str], bool]
Preparation = Callable[
    [Sequence[IngestItem], AlreadyThere], Iterator[tuple[IngestItem, "Prepared | Outcome"]]
]


def threaded_preparation(store: ObjectStore, settings: Settings) -> Preparation:
    """Photos prepared in ``settings.ingest_workers`` threads (decoding and OpenCV free the GIL),
    handed back in order with a bounded look-ahead."""

    def run(
        items: Sequence[IngestItem], already_there: AlreadyThere
    ) -> Iterator[tuple[IngestItem, Prepared | Outcome]]:
        workers = max(1, settings.ingest_workers)
        pending: deque[tuple[IngestItem, Future]] = deque()
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ingest") as pool:
            try:
                for item in items:
                    future = pool.submit(prepare_photo, item, store, settings, already_there)
                    pending.append((item, future))
                    while len(pending) > workers * 4:
                        done_item, done = pending.popleft()
                        yield done_item, done.result()
                while pending:
                    done_item, done = pending.popleft()
                    yield done_item, done.result()
            except BaseException:  # interrupted, or the caller stopped early: drop the rest
                pool.shutdown(wait=True, cancel_futures=True)
                raise

    return run


def ingest_items(
    items: Sequence[IngestItem],
    catalog: Catalog,
    store: ObjectStore,
    settings: Settings,
    *,
    target: str,
    problems: Iterable[Problem] = (),
    ignored: int = 0,
    on_outcome: Callable[[Outcome], None] | None = None,
    preparation: Preparation | None = None,
) -> IngestReport:
    """Ingest ``items``; return the report. Safe to re-run: what is already there is skipped.

    ``problems`` are the source's own (bad manifest rows); they are counted, not retried.
    ``on_outcome`` is called on the calling thread after each item (progress bars, messages).
    ``preparation`` reads and localises the photos (default: a thread pool here; the Ray engine
    passes its own); the database writes stay on the calling thread either way.
    """
    report = IngestReport(found=len(items), ignored_files=ignored)
    report.problems.extend(problems)
    report.rows_skipped = len(report.problems)
    started = time.perf_counter()
    store.ensure_ready()
    report.job_id = _start_job(catalog, target, {"items": len(items)}, len(items))
    state = "failed"
    last_update = time.monotonic()

    def finish(outcome: Outcome) -> None:
        nonlocal last_update
        if outcome.status == "ingested":
            report.ingested += 1
        elif outcome.status == "already_present":
            report.already_present += 1
        else:
            report.failed += 1
            report.problems.append(Problem(outcome.item.origin, outcome.message or "failed"))
        if on_outcome:
            on_outcome(outcome)
        if time.monotonic() - last_update > 2.0:
            _update_job(catalog, report.job_id, report, None)
            last_update = time.monotonic()

    prepare = preparation or threaded_preparation(store, settings)
    stream = prepare(items, lambda item, digest: _already_there(catalog, item, digest))
    try:
        with closing(stream):
            for item, result in stream:
                if isinstance(result, Prepared):
                    result = _record(catalog, item, result, report)
                finish(result)
        state = "done"
    except KeyboardInterrupt:
        report.interrupted = True
        state = "interrupted"
    finally:
        if report.interrupted:
            # Ctrl-C may land inside a write: its cursor, kept alive by the interrupt's
            # traceback, holds SQLite's write lock until it is freed. The except block is over,
            # so the traceback is gone: collect what it held, then the job can be written.
            gc.collect()
        report.seconds = time.perf_counter() - started
        _update_job(catalog, report.job_id, report, state)
    if report.interrupted:
        raise KeyboardInterrupt
    return report
