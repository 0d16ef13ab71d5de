"""``/api/v1``: identification as a service, the catalogue, reviews and exports, as JSON."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from coinlens.api.accounts import AccountError, add_user, list_users
from coinlens.api.security import Admin, Reader, Reviewer
from coinlens.catalog import ROLES, SIDES, Specimen, catalog_counts
from coinlens.export import export_records
from coinlens.export.writers import Links, csv_chunks, iiif_collection, iiif_manifest, jsonld_chunks
from coinlens.identify.service import NoReferences, QueryCoin, coins_in_photo
from coinlens.review import (
    QueueFilter,
    RecordRefused,
    ReviewConflict,
    ReviewError,
    ReviewNotFound,
    SpecimenNotFound,
    TypeNotFound,
    bulk_accept,
    link_sides,
    queue_counts,
    queue_page,
    recent_reviews,
    record_measures,
    record_type,
    review_specimen,
    undo_review,
)
from coinlens.review.audit import (
    BatchNotFound,
    audit_status,
    draw_sample,
    next_audit_coin,
    refresh_after_review,
)
from coinlens.review.details import (
    search_types,
    specimen_detail,
    specimen_summary,
    type_by_reference,
    type_detail,
)
from coinlens.review.queue import QueueError
from coinlens.vision import ImageLoadError

router = APIRouter(prefix="/api/v1", tags=["api"])
MAX_UPLOADS = 2
# Coins one request matches again (the demo's 155 in about 5 s on two cores: a request of half a
# minute at most); more: the CLI's --rescore, with its progress bar and resumable job
RESCORE_LIMIT = 1000


def _home(request: Request):
    return request.app.state.home


@router.get("/status")
def status(request: Request, _: Reader) -> dict[str, Any]:
    """Counts of types, specimens by status, images and models."""
    with _home(request).catalog.reader() as session:
        return catalog_counts(session)


async def read_upload(upload: UploadFile, limit: int) -> bytes:
    """The upload's bytes, refused (413) as soon as it passes ``limit``."""
    chunks, size = [], 0
    while chunk := await upload.read(1 << 20):
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"upload {_name(upload)} is larger than {limit:,} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _name(upload: UploadFile) -> str:
    """The client's file name, for messages only: never used as a path."""
    return json.dumps((upload.filename or "upload")[:120])


@router.post("/identify")
async def identify(
    request: Request,
    principal: Reader,
    images: Annotated[list[UploadFile], File(description="One or two photos of one coin.")],
    sides: Annotated[list[str] | None, Form(description="obverse/reverse, one per image.")] = None,
    store: Annotated[bool, Form(description="Catalogue the coin as backlog too.")] = False,
    top_k: Annotated[int, Form(ge=1, le=50)] = 5,
    batch: Annotated[str | None, Form(max_length=255)] = None,
) -> dict[str, Any]:
    """Suggest types for a coin from one or two photos (for instance obverse and reverse).

    Nothing is stored unless ``store=true`` (which needs the reviewer role); the content type is
    read from the bytes, never from the file name.
    """
    if store and not principal.can("reviewer"):
        raise HTTPException(403, f"{principal.name} is a {principal.role}; storing needs reviewer")
    uploads = await read_uploads(images, sides, _home(request).settings.max_upload_bytes)
    # Decoding, embedding and matching take a CPU for a while: off the event loop.
    result, _ = await run_in_threadpool(
        identify_with_crops, request, uploads, store, top_k, batch, principal.name
    )
    return result


async def read_uploads(
    images: list[UploadFile], sides: list[str] | None, limit: int
) -> list[Upload]:
    """One or two uploaded photos with their sides, each refused (413) past ``limit`` bytes;
    400 for a wrong count or side."""
    if not 1 <= len(images) <= MAX_UPLOADS:
        raise HTTPException(400, f"send one or two images, not {len(images)}")
    sides = sides or ["unknown"] * len(images)
    if len(sides) != len(images) or any(side not in SIDES for side in sides):
        raise HTTPException(400, f"sides: one of {', '.join(SIDES)} per image")
    return [
        Upload(
            name=_name(upload),
            label=(upload.filename or "image")[:200],
            data=await read_upload(upload, limit),
            side=side,
        )
        for upload, side in zip(images, sides, strict=True)
    ]


@dataclass(frozen=True)
class Upload:
    name: str  # the client's file name, quoted, for messages
    label: str  # the client's file name as given, recorded as Image.source "upload:<label>"
    data: bytes
    side: str


def identify_with_crops(
    request: Request,
    uploads: list[Upload],
    store: bool,
    top_k: int,
    batch: str | None,
    who: str,
) -> tuple[dict[str, Any], list[QueryCoin]]:
    """Suggestions for the coin the uploads show (nothing stored unless ``store``), as
    ``POST /api/v1/identify`` answers, and the coin sides they were made from (their crops, for
    the visual search page); 415 for what is not a picture, 409 with no references."""
    settings = _home(request).settings
    coins = []
    for upload in uploads:
        try:
            coins.extend(
                coins_in_photo(upload.data, upload.side, max_pixels=settings.max_upload_pixels)
            )
        except ImageLoadError as exc:
            raise HTTPException(415, f"{upload.name}: {exc}") from None
    try:
        if store:
            result = _store_and_identify(request, uploads, top_k, batch, who)
        else:
            result = request.app.state.identifier.suggest(coins, top_k=top_k)
    except NoReferences as exc:
        raise HTTPException(409, str(exc)) from None
    result["stored"] = store
    result["sides"] = [coin.side for coin in coins]
    return result, coins


def _store_and_identify(
    request: Request, uploads: list[Upload], top_k: int, batch: str | None, who: str
) -> dict[str, Any]:
    """Catalogue the upload as one backlog specimen (as ``coinlens identify`` would) and
    return its stored suggestions."""
    from coinlens.identify.batch import identify_specimens, specimens_for_items, suggestion_records
    from coinlens.ingest import IngestItem, ingest_items
    from coinlens.storage.base import sha256_hex

    home = _home(request)
    accession = "upload/" + sha256_hex(b"".join(u.data for u in uploads))[:16]
    with tempfile.TemporaryDirectory(prefix="coinlens-upload-") as folder:
        items = []
        for number, upload in enumerate(uploads):
            path = Path(folder) / f"image-{number}"  # our name: the client's never touches disk
            path.write_bytes(upload.data)
            items.append(
                IngestItem(
                    path=path,
                    origin=f"upload {upload.name}",
                    accession=accession,
                    side=upload.side,
                    status="backlog",
                    batch=batch or "api",
                    source=f"upload:{upload.label}",
                )
            )
        report = ingest_items(
            items, home.catalog, home.store, home.settings, target=f"api upload by {who}"
        )
    if report.failed:
        raise HTTPException(415, "; ".join(str(p) for p in report.problems))
    model, matcher = request.app.state.identifier.ready()
    ids = specimens_for_items(home, items)
    identify_specimens(home, model, matcher, ids, target="api", top_k=top_k)
    records = list(suggestion_records(home, ids, model.version.id))
    return {"model_version": model.version.id, "specimens": records, **records[0]}


@router.get("/queue")
def queue(
    request: Request,
    principal: Reader,
    decision: Literal["auto_accept", "review", "possible_new_type"] | None = None,
    type_id: int | None = None,
    batch: str | None = Query(None, max_length=255),
    status: Literal["backlog", "in_review"] = "backlog",
    order: Literal["confidence", "margin"] = "confidence",
    cursor: str | None = Query(None, max_length=64),
    limit: int = Query(50, ge=1, le=500),
) -> dict[str, Any]:
    """The review queue, least certain first (the coins you skipped last); pass
    ``next_cursor`` back for the next page."""
    filters = QueueFilter(decision, type_id, batch, status, order, reviewer=principal.name)
    with _home(request).catalog.reader() as session:
        try:
            page = queue_page(session, filters, cursor=cursor, limit=limit)
        except QueueError as exc:
            raise HTTPException(400, str(exc)) from None
        return {
            "counts": queue_counts(session, filters),
            "items": page.items,
            "next_cursor": page.next_cursor,
        }


@router.get("/specimens")
def specimens(
    request: Request,
    _: Reader,
    status: Literal["catalogued", "backlog", "in_review"] | None = None,
    decision: Literal["auto_accept", "review", "possible_new_type"] | None = None,
    type_id: int | None = None,
    batch: str | None = Query(None, max_length=255),
    accession: str | None = Query(None, max_length=255, description="Accession prefix."),
    after_id: int = Query(0, ge=0),
    limit: int = Query(100, ge=1, le=1000),
) -> dict[str, Any]:
    """Specimens by id, filtered; pass ``next_after_id`` back for the next page."""
    query = select(Specimen).where(Specimen.id > after_id)
    if status:
        query = query.where(Specimen.status == status)
    if decision:
        query = query.where(Specimen.decision == decision)
    if type_id is not None:
        query = query.where(Specimen.type_id == type_id)
    if batch:
        query = query.where(Specimen.batch == batch)
    if accession:
        query = query.where(Specimen.accession.startswith(accession, autoescape=True))
    with _home(request).catalog.reader() as session:
        rows = session.scalars(query.order_by(Specimen.id).limit(limit + 1)).all()
    items = [specimen_summary(s) for s in rows[:limit]]
    return {"items": items, "next_after_id": items[-1]["id"] if len(rows) > limit else None}


@router.get("/specimens/{specimen_id}")
def specimen(request: Request, specimen_id: int, _: Reader) -> dict[str, Any]:
    """A specimen with its images, newest suggestions (and their evidence) and audit trail."""
    with _home(request).catalog.reader() as session:
        detail = specimen_detail(session, specimen_id)
    if detail is None:
        raise HTTPException(404, f"specimen {specimen_id} does not exist")
    return detail


class ReviewRequest(BaseModel):
    """One review action. ``accept``, ``correct``, ``new_type`` and ``skip`` act on backlog and
    flagged coins; a catalogued coin changes type only by ``reattribute``, with the reason as
    ``comment`` (anything else on it is refused with 409)."""

    action: Literal["accept", "correct", "new_type", "skip", "reattribute", "partial"]
    type_id: int | None = None
    type: str | None = Field(None, max_length=255, description="A type reference, if no type_id.")
    add_type: bool = Field(
        False,
        description="With correct and type: add the type if the catalogue lacks it; the coin "
        "becomes its first reference (identify finds it at once, no training needed).",
    )
    attribution: dict[str, str] | None = Field(
        None,
        description='With partial: the levels you are sure of, e.g. {"authority": '
        '"Constantine I", "mint": "Alexandria"} (series, authority, mint, '
        "denomination); the coin stays in review for its exact type.",
    )
    version: int | None = Field(None, description="The specimen version you saw (conflict check).")
    comment: str | None = Field(
        None, max_length=4000, description="Why (kept in the trail; required to reattribute)."
    )


@contextmanager
def review_errors() -> Iterator[None]:
    """The review layer's refusals as HTTP errors: a conflict 409, a missing record 404, a
    refused value or action 400 (values refused per field: ``errors`` beside ``error``)."""
    try:
        yield
    except ReviewConflict as exc:
        raise HTTPException(409, str(exc)) from None
    except (SpecimenNotFound, TypeNotFound, ReviewNotFound, BatchNotFound) as exc:
        raise HTTPException(404, str(exc)) from None
    except RecordRefused as exc:
        raise HTTPException(400, {"error": str(exc), "errors": exc.errors}) from None
    except ReviewError as exc:
        raise HTTPException(400, str(exc)) from None


def apply_review(request: Request, specimen_id: int, who: str, body: ReviewRequest) -> dict:
    """One review action, shared by the API and the review pages; catalogued coins join the
    reference index at once."""
    home = _home(request)
    type_id, add_type = body.type_id, None
    if body.add_type:  # the review layer adds the type, or takes the one of that reference
        add_type = body.type or ""
    elif type_id is None and body.type:
        with home.catalog.reader() as session:
            found = type_by_reference(session, body.type)
        if found is not None:
            type_id = found.id
        else:
            raise HTTPException(
                400,
                f"type {body.type!r} is not in the catalogue; to add it, send add_type "
                "(on the review page: tick 'a new type')",
            )
    with review_errors():
        state = review_specimen(
            home.catalog,
            specimen_id,
            reviewer=who,
            action=body.action,
            expected_version=body.version,
            type_id=type_id,
            comment=body.comment,
            add_type=add_type,
            attribution=body.attribution,
        )
    if body.action not in ("skip", "partial"):
        state["references_added"] = request.app.state.identifier.add_specimens([specimen_id])
        refresh_after_review(home.catalog, [specimen_id], home.settings)  # an audited coin?
    return state


@router.post("/specimens/{specimen_id}/review")
def review(request: Request, specimen_id: int, body: ReviewRequest, who: Reviewer) -> dict:
    """Accept the suggested type, correct it, flag a possible new type, skip a backlog or
    flagged coin, or record the coarser levels you are sure of (``partial``, the coin stays in
    review); re-attribute a catalogued one (with the reason as ``comment``). The answer's
    ``review_id`` undoes it (``POST /api/v1/reviews/{review_id}/undo``)."""
    return apply_review(request, specimen_id, who.name, body)


class UndoRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    comment: str | None = Field(None, max_length=4000, description="Why, for the trail.")


def apply_undo(request: Request, review_id: int, who: str, comment: str | None = None) -> dict:
    """Undo a review (``undo_review``) and bring the reference index in step with every coin it
    restored (a coin no longer catalogued leaves the references, one catalogued again joins)."""
    home = _home(request)
    with review_errors():
        state = undo_review(home.catalog, review_id, reviewer=who, comment=comment)
    state["references_added"] = request.app.state.identifier.add_specimens(state["specimen_ids"])
    refresh_after_review(home.catalog, state["specimen_ids"], home.settings)
    return state


@router.post("/reviews/{review_id}/undo")
def undo(
    request: Request, review_id: int, who: Reviewer, body: UndoRequest | None = None
) -> dict[str, Any]:
    """Undo a review action (accept, correct, flag, skip, re-attribute, record edit, link, or a
    whole bulk accept) as a new action in the trail: the coin's type, status, measures and
    references as they were before it. Refused with 409 where someone changed the coin since
    (the error names them) or it was undone already. Answers the specimen's state after it."""
    return apply_undo(request, review_id, who.name, body.comment if body else None)


@router.get("/reviews")
def reviews(
    request: Request,
    principal: Reader,
    reviewer: str | None = Query(
        None, max_length=255, description="A reviewer's name, or `me`; everyone's if left out."
    ),
    limit: int = Query(20, ge=1, le=500),
) -> dict[str, Any]:
    """Recent review actions, newest first (a bulk accept is one entry with its ``count``),
    each saying whether it was undone and can be."""
    name = principal.name if reviewer == "me" else reviewer
    with _home(request).catalog.reader() as session:
        return {"items": recent_reviews(session, name, limit=limit)}


def _patch(
    request: Request,
    record: Callable[..., dict[str, Any]],
    row_id: int,
    who: str,
    body: MeasuresRequest | TypeRecordRequest,
) -> dict[str, Any]:
    """A PATCH of a record (``record_measures`` or ``record_type``): the fields the body named
    (null among them: clear it) are written, if the version it carries is still current."""
    values = {name: getattr(body, name) for name in body.model_fields_set - {"version"}}
    with review_errors():
        return record(
            _home(request).catalog,
            row_id,
            reviewer=who,
            expected_version=body.version,
            values=values,
        )


class MeasuresRequest(BaseModel):
    """A specimen's measures and note: the fields sent are written (null clears one), the rest
    kept. A number may also be sent as text, with a decimal comma ("3,92")."""

    model_config = ConfigDict(extra="forbid")  # a misspelt field is refused, not ignored

    version: int | None = Field(None, description="The specimen version you saw (conflict check).")
    weight_g: float | str | None = Field(None, description="Grams, above 0 and at most 5000.")
    diameter_mm: float | str | None = Field(
        None, description="Millimetres, above 0 and at most 500."
    )
    die_axis: int | str | None = Field(None, description="Clock hours, 1 to 12 (0 is read as 12).")
    notes: str | None = Field(None, max_length=10000, description="The curator's note.")


@router.patch("/specimens/{specimen_id}")
def specimen_measures(
    request: Request, specimen_id: int, body: MeasuresRequest, who: Reviewer
) -> dict[str, Any]:
    """Correct or complete a coin's weight, diameter, die axis and note (checked as a manifest's
    are, every field at once: ``errors`` per field; recorded in its audit trail, undoable by the
    answer's ``review_id``). ``changed`` lists what differed: [old, new] per field."""
    return _patch(request, record_measures, specimen_id, who.name, body)


class LinkRequest(BaseModel):
    """Two specimens that are one coin: the other's photos join this one as its other side."""

    model_config = ConfigDict(extra="forbid")

    other: str = Field(
        ..., min_length=1, max_length=255, description="Accession of the other side's specimen."
    )
    side: Literal["obverse", "reverse"] = Field(..., description="What this coin's photos show.")
    version: int | None = Field(None, description="The specimen version you saw (conflict check).")
    other_version: int | None = Field(None, description="The other specimen's version you saw.")


def apply_link(request: Request, specimen_id: int, who: str, body: LinkRequest) -> dict:
    """Link the sides (``link_sides``), then match the coin again on both sides at once where a
    model is ready (a backlog coin gets its new suggestions in the same request), and keep the
    reference index in step for a catalogued one."""
    from coinlens.identify.batch import identify_specimens

    home = _home(request)
    with review_errors():
        state = link_sides(
            home.catalog,
            specimen_id,
            body.other,
            side=body.side,
            reviewer=who,
            expected_version=body.version,
            other_version=body.other_version,
        )
    identifier = request.app.state.identifier
    state["references_added"] = identifier.add_specimens([specimen_id])
    state["matched"] = False
    if state["status"] != "catalogued":
        try:
            model, matcher = identifier.ready()
        except NoReferences:
            return state  # no references yet: the next identify matches it
        identify_specimens(
            home, model, matcher, [specimen_id], target=f"link by {who}", rescore=True
        )
        state["matched"] = True
    return state


@router.post("/specimens/{specimen_id}/link")
def link(request: Request, specimen_id: int, body: LinkRequest, who: Reviewer) -> dict[str, Any]:
    """The specimen with accession ``other`` is this coin's other side: its photos join this
    one (``side``: what this one's photos show), its accession becomes an alias, and the coin is
    matched again on both sides."""
    return apply_link(request, specimen_id, who.name, body)


class RescoreRequest(BaseModel):
    status: Literal["backlog", "in_review"] = "backlog"
    decision: Literal["auto_accept", "review", "possible_new_type"] | None = None
    batch: str | None = Field(None, max_length=255)
    type: str | None = Field(None, max_length=255, description="Suggested type reference.")


def apply_rescore(request: Request, who: str, body: RescoreRequest) -> dict[str, Any]:
    """Match the queue's coins (as filtered) again against the references as they are now:
    after a new type's first reference, its coins flagged or waiting are suggested as it."""
    from coinlens.identify.batch import identify_specimens

    home = _home(request)
    with home.catalog.reader() as session:
        type_id = None
        if body.type:
            found = type_by_reference(session, body.type)
            if found is None:
                raise HTTPException(400, f"type {body.type!r} is not in the catalogue")
            type_id = found.id
        filters = QueueFilter(body.decision, type_id, body.batch, body.status)
        ids = session.scalars(
            select(Specimen.id).where(*filters.conditions()).order_by(Specimen.id)
        ).all()
    if len(ids) > RESCORE_LIMIT:
        raise HTTPException(
            400,
            f"{len(ids)} coins: match at most {RESCORE_LIMIT} at a time here (filter by batch or "
            "decision), or run `coinlens identify FOLDER --rescore`",
        )
    try:
        model, matcher = request.app.state.identifier.ready()
    except NoReferences as exc:
        raise HTTPException(409, str(exc)) from None
    summary = identify_specimens(
        home, model, matcher, ids, target=f"rescore by {who}", rescore=True
    )
    return {
        "matched": summary["identified"],
        "decisions": summary["decisions"],
        "model_version": model.version.id,
    }


@router.post("/rescore")
def rescore(request: Request, body: RescoreRequest, who: Reviewer) -> dict[str, Any]:
    """Match the queue's coins again (filtered like the queue) against the references as they
    are now, with the current model: a type added in review is suggested at once."""
    return apply_rescore(request, who.name, body)


class BulkAcceptRequest(BaseModel):
    batch: str | None = Field(None, max_length=255)
    expected_count: int | None = Field(None, ge=0)


def apply_bulk_accept(request: Request, who: str, batch: str | None, expected: int | None):
    home = _home(request)
    try:
        done = bulk_accept(
            home.catalog, batch, reviewer=who, expected_count=expected, settings=home.settings
        )
    except ReviewConflict as exc:
        raise HTTPException(409, str(exc)) from None
    request.app.state.identifier.add_specimens(done.specimen_ids)
    return {"batch": batch, "accepted": len(done.specimen_ids), "review_id": done.review_id}


@router.post("/bulk-accept")
def bulk(request: Request, body: BulkAcceptRequest, who: Reviewer) -> dict[str, Any]:
    """Accept every auto_accept suggestion of a batch (all batches without one); the answer's
    ``review_id`` undoes the whole accept."""
    return apply_bulk_accept(request, who.name, body.batch, body.expected_count)


def batch_audit(request: Request, batch: str) -> dict[str, Any]:
    home = _home(request)
    with review_errors():
        return audit_status(home.catalog, batch, home.settings)


@router.get("/batches/{batch}/audit")
def get_audit(request: Request, batch: str, _: Reader) -> dict[str, Any]:
    """The batch's shift, its audit (the drawn coins not yet reviewed as ``sample``, how many
    were reviewed and wrong, the precision and its one-sided 95% lower bound) and whether its
    auto-accept is allowed. Review the sample with ``POST /api/v1/specimens/{id}/review``
    (accept: right; another type: wrong)."""
    return batch_audit(request, batch)


class DrawRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    n: int | None = Field(
        None, ge=1, le=1000, description="Coins to draw (default: the home's audit_sample)."
    )
    purpose: Literal["bound", "teach"] = Field(
        "bound",
        description="bound: at random from the auto-accept candidates, counted in the bound; "
        "teach: the batch's least certain coins, spread over the suggested types, for its "
        "calibration (not counted in the bound).",
    )


def apply_draw(
    request: Request, batch: str, who: str, n: int | None, purpose: str = "bound"
) -> dict[str, Any]:
    home = _home(request)
    with review_errors():
        drawn = draw_sample(
            home.catalog, batch, n=n or home.settings.audit_sample, reviewer=who, purpose=purpose
        )
        return {**audit_status(home.catalog, batch, home.settings), "drawn_now": drawn}


@router.post("/batches/{batch}/audit/draw")
def draw(
    request: Request, batch: str, who: Reviewer, body: DrawRequest | None = None
) -> dict[str, Any]:
    """Draw more of the batch's auto-accept candidates into its audit, at random and spread
    over the suggested types; answers the audit as ``GET`` does, with ``drawn_now``."""
    if body is None:
        return apply_draw(request, batch, who.name, None)
    return apply_draw(request, batch, who.name, body.n, body.purpose)


@router.post("/batches/{batch}/audit/next")
def audit_next(request: Request, batch: str, who: Reviewer) -> dict[str, Any]:
    """The drawn coin for the caller to review next, held for them so that no other reviewer
    gets it (``specimen_id`` null when none is left for them)."""
    home = _home(request)
    with review_errors():
        return {"specimen_id": next_audit_coin(home.catalog, batch, reviewer=who.name)}


@router.get("/types")
def types(
    request: Request,
    _: Reader,
    q: str = Query("", max_length=255, description="Text in the reference or fields."),
    limit: int = Query(20, ge=1, le=200),
) -> dict[str, Any]:
    """Type search (the review page's type-ahead)."""
    with _home(request).catalog.reader() as session:
        return {"items": search_types(session, q, limit=limit)}


@router.get("/types/{type_id}")
def coin_type(request: Request, type_id: int, _: Reader) -> dict[str, Any]:
    with _home(request).catalog.reader() as session:
        detail = type_detail(session, type_id)
    if detail is None:
        raise HTTPException(404, f"type {type_id} does not exist")
    return detail


class TypeRecordRequest(BaseModel):
    """A type's record: the fields sent are written (null or "" clears one), the rest kept."""

    model_config = ConfigDict(extra="forbid")  # a misspelt field is refused, not ignored

    version: int | None = Field(None, description="The type version you saw (conflict check).")
    uri: str | None = Field(None, max_length=1024, description="e.g. a Nomisma type URI.")
    authority: str | None = Field(None, max_length=255)
    mint: str | None = Field(None, max_length=255)
    denomination: str | None = Field(None, max_length=255)
    date_from: int | None = Field(None, description="A year, negative for BC.")
    date_to: int | None = None
    material: str | None = Field(None, max_length=255)
    description: str | None = Field(None, max_length=4000)


@router.patch("/types/{type_id}")
def edit_type(
    request: Request, type_id: int, body: TypeRecordRequest, who: Reviewer
) -> dict[str, Any]:
    """Fill in or correct a type's record (a type added in review starts as its reference
    alone); every edit is kept in the type's history. The reference itself does not change."""
    return _patch(request, record_type, type_id, who.name, body)


@router.get("/export")
def export(
    request: Request,
    _: Reader,
    format: Literal["csv", "jsonld", "iiif"] = "csv",
    status: Literal["catalogued", "backlog", "in_review", "all"] = "catalogued",
):
    """The catalogue as CSV, Nomisma JSON-LD, or the IIIF collection (manifests under /iiif)."""
    home = _home(request)
    links = Links(home.settings.public_url)
    records = export_records(home.catalog, status)
    if format == "csv":
        return StreamingResponse(
            csv_chunks(records, links),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="coinlens.csv"'},
        )
    if format == "jsonld":
        return StreamingResponse(jsonld_chunks(records, links), media_type="application/ld+json")
    entries = ((r.specimen_id, r.accession) for r in records)
    return JSONResponse(iiif_collection(entries, links), media_type="application/ld+json")


def manifest_for(request: Request, specimen_id: int) -> dict[str, Any]:
    home = _home(request)
    links = Links(home.settings.public_url)
    record = next(export_records(home.catalog, "all", specimen_id=specimen_id), None)
    if record is None:
        raise HTTPException(404, f"specimen {specimen_id} does not exist")
    return iiif_manifest(record, links)


class NewUser(BaseModel):
    name: str = Field(max_length=255)
    password: str = Field(min_length=1, max_length=1024)
    role: Literal["viewer", "reviewer", "admin"] = "reviewer"


@router.get("/users")
def users(request: Request, _: Admin) -> dict[str, Any]:
    return {"items": list_users(_home(request).catalog), "roles": list(ROLES)}


@router.post("/users", status_code=201)
def create_user(request: Request, body: NewUser, _: Admin) -> dict[str, Any]:
    try:
        created = add_user(_home(request).catalog, body.name, body.password, body.role)
    except AccountError as exc:
        raise HTTPException(400, str(exc)) from None
    return {"id": created.user_id, "name": created.name, "role": created.role}
