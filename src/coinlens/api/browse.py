"""The curator's pages beyond the queue: the dashboard, the catalogue (types and specimens),
visual search, the compare view, evaluation reports, and the admin pages (users, tokens,
exports).

Server-rendered like the review pages (``web.render``); every form posts the session's CSRF
token; admin pages answer 403 to anyone else.
"""

from __future__ import annotations

import base64
import io
import json
import re
import secrets
import tempfile
import time
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from coinlens.api.accounts import (
    AccountError,
    add_user,
    change_user,
    create_token,
    list_tokens,
    list_users,
    revoke_token,
)
from coinlens.api.rest import Upload, identify_with_crops, read_uploads
from coinlens.api.security import PageAdmin, PageReader, check_form_csrf
from coinlens.api.web import render
from coinlens.catalog import DECISIONS, ROLES, SPECIMEN_STATUSES, Image, Specimen, catalog_counts
from coinlens.export import write_export
from coinlens.identify.partial import type_records
from coinlens.review.browse import (
    BrowseError,
    SpecimenFilter,
    TypeFilter,
    batch_progress,
    current_model,
    list_specimens,
    list_types,
    reviews_per_day,
)
from coinlens.review.details import reference_coins
from coinlens.review.queue import batches
from coinlens.storage import KeyNotFound
from coinlens.vision.compare import compare_crops

browse_pages = APIRouter(include_in_schema=False)
SPECIMEN_PAGE = 50
HELD_UPLOADS = 16  # visual searches kept a while, so that a reviewer can store the coin
HELD_SECONDS = 1800
HELD_BYTES = 200 * 1024 * 1024  # and no more photo bytes than this, whatever their number
REPORT_NAME = re.compile(r"^[A-Za-z0-9._-]+$")


@browse_pages.get("/", response_class=HTMLResponse)
def dashboard(request: Request, user: PageReader) -> Response:
    """Where the work stands: each batch's progress, who reviewed how much, the current model
    and the evaluation reports."""
    home = request.app.state.home
    with home.catalog.reader() as session:
        progress = batch_progress(session)
        reviews = reviews_per_day(session)
        model = current_model(session)
    return render(
        request,
        "dashboard.html",
        {
            "user": user,
            "batches": progress,
            "reviews": reviews,
            "model": model,
            "reports": evaluation_reports(home.settings.home),
        },
    )


# evaluation reports -----------------------------------------------------------------------


def evaluation_reports(home_folder: Path) -> list[dict[str, Any]]:
    """The reports ``coinlens eval`` wrote into the home (``reports/eval-*``), newest first,
    each with its headline figures."""
    folder = home_folder / "reports"
    if not folder.is_dir():
        return []
    out = []
    for report in sorted(folder.iterdir(), reverse=True):
        summary = _report_summary(report)
        if summary is not None:
            out.append({"name": report.name, **_headline(summary)})
    return out


def _report_summary(report: Path) -> dict[str, Any] | None:
    if not (report.is_dir() and REPORT_NAME.match(report.name)):
        return None
    found = sorted(report.glob("*.json"))
    if not found:
        return None
    try:
        return json.loads(found[0].read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _headline(summary: dict[str, Any]) -> dict[str, Any]:
    accepted = summary.get("at_calibrated_threshold") or {}
    per_coin = summary.get("per_coin") or {}
    return {
        "queries": summary.get("n_queries"),
        "top1": summary.get("top1"),
        "top5": summary.get("top5"),
        "coin_top1": per_coin.get("top1"),
        "coverage": accepted.get("coverage"),
        "precision": accepted.get("precision"),
    }


def _report_folder(request: Request, name: str) -> Path:
    folder = request.app.state.home.settings.home / "reports" / name
    if not REPORT_NAME.match(name) or not folder.is_dir():
        raise HTTPException(404, f"no evaluation report {name}")
    return folder


@browse_pages.get("/reports/{name}", response_class=HTMLResponse)
def report_page(request: Request, name: str, user: PageReader) -> Response:
    """One evaluation report: its figures, its pictures and its page of mistakes."""
    folder = _report_folder(request, name)
    summary = _report_summary(folder)
    if summary is None:
        raise HTTPException(404, f"evaluation report {name} has no summary")
    files = sorted(p.name for p in folder.iterdir() if p.is_file())
    return render(
        request,
        "report.html",
        {
            "user": user,
            "name": name,
            "headline": _headline(summary),
            "by_series": summary.get("by_series") or {},
            "pictures": [f for f in files if f.endswith(".png")],
            "pages": [f for f in files if f.endswith(".html")],
            "summary": json.dumps(summary, indent=2)[:200_000],
        },
    )


@browse_pages.get("/reports/{name}/{file}")
def report_file(request: Request, name: str, file: str, _: PageReader) -> Response:
    """A report's picture or page (its own files only, nothing above its folder)."""
    folder = _report_folder(request, name)
    path = folder / file
    if not REPORT_NAME.match(file) or not path.is_file():
        raise HTTPException(404, f"report {name} has no file {file}")
    # a report's page is ours, but shown as a document: no scripts run in it
    return FileResponse(path, headers={"Content-Security-Policy": "script-src 'none'"})


# the catalogue ----------------------------------------------------------------------------


def _year(text: str | None, name: str) -> int | None:
    if text is None or not text.strip():
        return None
    try:
        return int(text.strip())
    except ValueError:
        raise HTTPException(400, f"{name} {text!r}: a year, negative for BC") from None


@browse_pages.get("/types", response_class=HTMLResponse)
def types_page(
    request: Request,
    user: PageReader,
    q: str = Query("", max_length=255),
    series: str = Query("", max_length=255),
    authority: str = Query("", max_length=255),
    mint: str = Query("", max_length=255),
    denomination: str = Query("", max_length=255),
    material: str = Query("", max_length=255),
    year_from: str | None = Query(None, alias="from", max_length=8),
    year_to: str | None = Query(None, alias="to", max_length=8),
    sort: str = Query("reference", max_length=16),
    page: int = Query(1, ge=1, le=100_000),
) -> Response:
    """Every type with its counts of coins, filtered, searched and sorted."""
    try:
        filters = TypeFilter(
            q, series, authority, mint, denomination, material,
            _year(year_from, "from"), _year(year_to, "to"), sort or "reference",
        )  # fmt: skip
    except BrowseError as exc:
        raise HTTPException(400, str(exc)) from None
    with request.app.state.home.catalog.reader() as session:
        listing = list_types(session, filters, page)
    params = {
        k: v
        for k, v in {
            "q": q, "series": series, "authority": authority, "mint": mint,
            "denomination": denomination, "material": material, "from": year_from or "",
            "to": year_to or "", "sort": sort if sort != "reference" else "",
        }.items()
        if v
    }  # fmt: skip
    return render(
        request,
        "types.html",
        {"user": user, "listing": listing, "params": params, "filters": filters},
    )


@browse_pages.get("/specimens", response_class=HTMLResponse)
def specimens_page(
    request: Request,
    user: PageReader,
    q: str = Query("", max_length=255),
    status: str = Query("", max_length=16),
    batch: str = Query("", max_length=255),
    after: str | None = Query(None, max_length=255),
) -> Response:
    """Every specimen, searched by accession, alias, type or note; paged by accession."""
    try:
        filters = SpecimenFilter(q, status, batch)
    except BrowseError as exc:
        raise HTTPException(400, str(exc)) from None
    with request.app.state.home.catalog.reader() as session:
        listing = list_specimens(session, filters, after=after, limit=SPECIMEN_PAGE)
        batch_names = batches(session, None)
    params = {k: v for k, v in {"q": q, "status": status, "batch": batch}.items() if v}
    next_url = (
        f"/specimens?{urlencode({**params, 'after': listing['next']})}" if listing["next"] else None
    )
    here = "/specimens" + (f"?{urlencode({**params, **({'after': after} if after else {})})}")
    return render(
        request,
        "specimens.html",
        {
            "user": user,
            "items": listing["items"],
            "params": params,
            "statuses": SPECIMEN_STATUSES,
            "batches": batch_names,
            "next_url": next_url,
            "first_page": after is None,
            "here": here.rstrip("?"),
        },
    )


# the compare view -------------------------------------------------------------------------


def _data_uri(jpeg: bytes | None) -> str | None:
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode() if jpeg else None


@browse_pages.get("/specimens/{specimen_id}/compare", response_class=HTMLResponse)
def compare_page(
    request: Request,
    specimen_id: int,
    user: PageReader,
    reference: int = Query(..., description="The reference image's id."),
    image: int | None = Query(None, description="This coin's image (its first by default)."),
    back: str | None = Query(None, max_length=2048),
) -> Response:
    """This coin's side beside one reference coin's side at the same size, the reference
    aligned onto it by the keypoint transform where one was found, and the matches drawn."""
    home = request.app.state.home
    with home.catalog.reader() as session:
        specimen = session.get(Specimen, specimen_id)
        if specimen is None:
            raise HTTPException(404, f"specimen {specimen_id} does not exist")
        images = {i.id: i for i in specimen.images}
        chosen = reference_image = session.get(Image, reference)
        if chosen is None:
            raise HTTPException(404, f"image {reference} does not exist")
        mine = images.get(image) if image is not None else None
        if mine is None:  # the side that shows what the reference shows, else the first
            same = [i for i in specimen.images if i.side == chosen.side]
            mine = (same or list(specimen.images) or [None])[0]
        if mine is None:
            raise HTTPException(404, f"specimen {specimen_id} has no image")
        other = session.get(Specimen, reference_image.specimen_id)
        keys = (
            (mine.crop or {}).get("key") or mine.key,
            (chosen.crop or {}).get("key") or chosen.key,
        )
        own_sides = [{"id": i.id, "side": i.side} for i in specimen.images]
        sides_there = [
            {"id": i.id, "side": i.side} for i in (other.images if other is not None else [])
        ]
        names = {
            "query": specimen.accession,
            "query_side": mine.side,
            "reference": other.accession if other else str(reference),
            "reference_id": other.id if other else None,
            "reference_side": chosen.side,
            "reference_type": other.type_id if other else None,
        }
    try:
        query_bytes, reference_bytes = home.store.get(keys[0]), home.store.get(keys[1])
    except KeyNotFound as exc:
        raise HTTPException(404, f"image missing from the store: {exc}") from None
    try:
        result = compare_crops(query_bytes, reference_bytes)
    except (OSError, ValueError) as exc:  # a stored crop that no longer decodes
        raise HTTPException(
            422, f"a stored crop cannot be read ({exc}); run ingest again"
        ) from None
    return render(
        request,
        "compare.html",
        {
            "user": user,
            "specimen_id": specimen_id,
            "names": names,
            "mine": mine.id,
            "reference": reference,
            "own_sides": own_sides,
            "sides_there": sides_there,
            "result": result,
            "query_src": _data_uri(result.query_jpeg),
            "reference_src": _data_uri(result.reference_jpeg),
            "aligned_src": _data_uri(result.aligned_jpeg),
            "matches_src": _data_uri(result.matches_jpeg),
            "back": back or f"/specimens/{specimen_id}",
        },
    )


# visual search ----------------------------------------------------------------------------


def _held(request: Request) -> OrderedDict[str, tuple[str, float, list[Upload]]]:
    state = request.app.state
    if not hasattr(state, "held_uploads"):
        state.held_uploads = OrderedDict()
    return state.held_uploads


def hold_uploads(request: Request, who: str, uploads: list[Upload]) -> str:
    """Keep a search's photos in memory a while (``HELD_SECONDS``, the newest
    ``HELD_UPLOADS``), so that its coin can be stored as backlog without sending them again."""
    held = _held(request)
    now = time.monotonic()
    for token in [t for t, (_, at, _) in held.items() if now - at > HELD_SECONDS]:
        del held[token]
    token = secrets.token_urlsafe(16)
    held[token] = (who, now, uploads)

    def held_bytes() -> int:
        return sum(len(u.data) for _, _, kept in held.values() for u in kept)

    while len(held) > HELD_UPLOADS or (len(held) > 1 and held_bytes() > HELD_BYTES):
        held.popitem(last=False)
    return token


def _search_page(
    request: Request, user: Any, *, message: str | None = None, status: int = 200, **extra: Any
) -> Response:
    home = request.app.state.home
    return render(
        request,
        "search.html",
        {
            "user": user,
            "message": message,
            "limit_mb": home.settings.max_upload_bytes / 1e6,
            "can_store": user is not None and user.can("reviewer"),
            **extra,
        },
        status,
    )


def search_refused(request: Request, user: Any, message: str, status: int) -> Response:
    """The search form again with why an upload was refused (nothing stored)."""
    return _search_page(request, user, message=message, status=status)


@browse_pages.get("/search", response_class=HTMLResponse)
def search_form(request: Request, user: PageReader) -> Response:
    return _search_page(request, user)


@browse_pages.post("/search", response_class=HTMLResponse)
async def search(request: Request, user: PageReader) -> Response:
    """Suggestions for the coin in one or two photos, as ``POST /api/v1/identify`` answers,
    with each suggested type's reference coins; stored as a backlog coin only if asked."""
    home = request.app.state.home
    form = await request.form()
    check_form_csrf(user, str(form.get("csrf_token") or ""))
    images = [f for f in form.getlist("images") if isinstance(f, UploadFile) and f.filename]
    sides = [str(s) for s in form.getlist("sides")][: len(images)] or None
    if sides and all(s == "unknown" for s in sides):
        sides = None
    if sides and len(sides) != len(images):
        sides = None
    store = bool(form.get("store"))
    batch = str(form.get("batch") or "").strip()[:255] or "search"
    if store and not user.can("reviewer"):
        raise HTTPException(403, f"{user.name} is a {user.role}; storing needs reviewer")
    if not images:
        return search_refused(request, user, "choose one or two photos of a coin", 400)
    try:
        uploads = await read_uploads(images, sides, home.settings.max_upload_bytes)
        result, coins = await run_in_threadpool(
            identify_with_crops, request, uploads, store, 5, batch, user.name
        )
    except HTTPException as exc:
        return search_refused(request, user, str(exc.detail), exc.status_code)
    if store:
        stored = result.get("specimen_id")
        return RedirectResponse(
            f"/specimens/{stored}?{urlencode({'notice': 'stored as a backlog coin'})}",
            status_code=303,
        )
    token = hold_uploads(request, user.name, uploads) if user.can("reviewer") else None
    with home.catalog.reader() as session:
        records = type_records(session, [s["type_id"] for s in result["suggestions"]])
        for suggestion in result["suggestions"]:
            suggestion["references"] = reference_coins(
                session,
                suggestion["type_id"],
                [e["specimen_id"] for e in suggestion["evidence"]],
            )
            suggestion["record"] = records.get(suggestion["type_id"])
    return _search_page(
        request,
        user,
        result=result,
        crops=[{"side": c.side, "src": _data_uri(c.crop_jpeg)} for c in coins],
        held=token,
        files=[u.label for u in uploads],
    )


@browse_pages.post("/search/store")
def store_search(
    request: Request,
    user: PageReader,
    held: Annotated[str, Form(max_length=64)],
    csrf_token: Annotated[str, Form(max_length=128)] = "",
    batch: Annotated[str, Form(max_length=255)] = "search",
) -> Response:
    """Store the coin of a recent visual search as a backlog coin, matched as identify does."""
    check_form_csrf(user, csrf_token)
    if not user.can("reviewer"):
        raise HTTPException(403, f"{user.name} is a {user.role}; storing needs reviewer")
    entry = _held(request).pop(held, None)
    if entry is None or entry[0] != user.name:
        return search_refused(
            request,
            user,
            "that search is no longer held here: choose the photos again with "
            "“store as a backlog coin” ticked",
            409,
        )
    try:
        result, _ = identify_with_crops(
            request, entry[2], True, 5, batch.strip() or "search", user.name
        )
    except HTTPException as exc:
        return search_refused(request, user, str(exc.detail), exc.status_code)
    return RedirectResponse(
        f"/specimens/{result['specimen_id']}?{urlencode({'notice': 'stored as a backlog coin'})}",
        status_code=303,
    )


# admin ------------------------------------------------------------------------------------


def _admin_back(path: str, text: str, *, done: bool) -> Response:
    return RedirectResponse(
        f"{path}?{urlencode({'notice' if done else 'message': text})}", status_code=303
    )


def _users_page(request: Request, user: Any, **extra: Any) -> Response:
    catalog = request.app.state.home.catalog
    context = {"users": list_users(catalog), "tokens": list_tokens(catalog), "roles": ROLES}
    return render(request, "admin_users.html", {"user": user, **context, **extra})


@browse_pages.get("/admin/users", response_class=HTMLResponse)
def users_page(request: Request, user: PageAdmin) -> Response:
    params = request.query_params
    return _users_page(request, user, notice=params.get("notice"), message=params.get("message"))


@browse_pages.post("/admin/users")
def add_user_form(
    request: Request,
    user: PageAdmin,
    name: Annotated[str, Form(max_length=255)],
    password: Annotated[str, Form(max_length=1024)],
    role: Annotated[str, Form(max_length=16)] = "reviewer",
    csrf_token: Annotated[str, Form(max_length=128)] = "",
) -> Response:
    check_form_csrf(user, csrf_token)
    try:
        created = add_user(request.app.state.home.catalog, name, password, role)
    except AccountError as exc:
        return _admin_back("/admin/users", str(exc), done=False)
    return _admin_back("/admin/users", f"added {created.name} ({created.role})", done=True)


@browse_pages.post("/admin/users/{name}")
def change_user_form(
    request: Request,
    name: str,
    user: PageAdmin,
    role: Annotated[str | None, Form(max_length=16)] = None,
    active: Annotated[str | None, Form(max_length=8)] = None,
    csrf_token: Annotated[str, Form(max_length=128)] = "",
) -> Response:
    """Change a user's role, or disable ("no") or enable ("yes") them."""
    check_form_csrf(user, csrf_token)
    if active not in (None, "yes", "no"):
        raise HTTPException(400, "active: yes or no")
    try:
        changed = change_user(
            request.app.state.home.catalog,
            name,
            role=role or None,
            active=None if active is None else active == "yes",
        )
    except AccountError as exc:
        return _admin_back("/admin/users", str(exc), done=False)
    state = "enabled" if changed["active"] else "disabled"
    return _admin_back("/admin/users", f"{name}: {changed['role']}, {state}", done=True)


@browse_pages.post("/admin/tokens", response_class=HTMLResponse)
def create_token_form(
    request: Request,
    user: PageAdmin,
    name: Annotated[str, Form(max_length=255)],
    label: Annotated[str, Form(max_length=255)] = "",
    days: Annotated[str, Form(max_length=6)] = "",
    csrf_token: Annotated[str, Form(max_length=128)] = "",
) -> Response:
    """A new token for a user, shown on this page once (only its hash is kept)."""
    check_form_csrf(user, csrf_token)
    if days.strip() and not (days.strip().isdigit() and int(days) > 0):
        return _admin_back("/admin/users", f"days {days!r}: a whole number of days", done=False)
    catalog = request.app.state.home.catalog
    try:
        token = create_token(
            catalog, name, label=label.strip() or None, days=int(days) if days.strip() else None
        )
    except AccountError as exc:
        return _admin_back("/admin/users", str(exc), done=False)
    return _users_page(request, user, new_token={"user": name, "token": token})


@browse_pages.post("/admin/tokens/{token_id}/revoke")
def revoke_token_form(
    request: Request,
    token_id: int,
    user: PageAdmin,
    csrf_token: Annotated[str, Form(max_length=128)] = "",
) -> Response:
    check_form_csrf(user, csrf_token)
    try:
        owner = revoke_token(request.app.state.home.catalog, token_id)
    except AccountError as exc:
        return _admin_back("/admin/users", str(exc), done=False)
    return _admin_back("/admin/users", f"revoked token {token_id} of {owner}", done=True)


EXPORT_STATUSES = ("catalogued", "backlog", "in_review", "all")


@browse_pages.get("/admin/exports", response_class=HTMLResponse)
def exports_page(request: Request, user: PageAdmin) -> Response:
    with request.app.state.home.catalog.reader() as session:
        counts = catalog_counts(session)
    return render(
        request,
        "admin_exports.html",
        {"user": user, "counts": counts, "statuses": EXPORT_STATUSES, "decisions": DECISIONS},
    )


@browse_pages.get("/admin/exports/iiif.zip")
def iiif_zip(
    request: Request, user: PageAdmin, status: str = Query("catalogued", max_length=16)
) -> Response:
    """The IIIF collection and a manifest per specimen, as ``coinlens export --format iiif``
    writes them, in one zip."""
    if status not in EXPORT_STATUSES:
        raise HTTPException(400, f"status {status!r}: use one of {', '.join(EXPORT_STATUSES)}")
    home = request.app.state.home
    with tempfile.TemporaryDirectory(prefix="coinlens-iiif-") as folder:
        write_export(home.catalog, "iiif", folder, home.settings.public_url, status, home.settings)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(Path(folder).rglob("*")):
                if path.is_file():
                    archive.write(path, path.relative_to(folder).as_posix())
    return Response(
        buffer.getvalue(),
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="coinlens-iiif-{status}.zip"'},
    )
