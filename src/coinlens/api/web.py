"""The review pages: sign in, the queue, a specimen with its suggestions, bulk accept, types,
the reviewer's recent actions (each undoable).

Server-rendered HTML (Jinja2, autoescaped) with a little JavaScript for keyboard shortcuts and the
type-ahead. Every form posts its session's CSRF token. The queue a reviewer works travels with
them as ``back`` (the queue's URL with its filters and order): coin links, "back to the queue"
and the next coin after an action all come from that list.
"""

from __future__ import annotations

import re
import secrets
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from fastapi import APIRouter, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from markupsafe import Markup
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from coinlens.api.accounts import check_password, end_session, start_session
from coinlens.api.rest import (
    RESCORE_LIMIT,
    LinkRequest,
    RescoreRequest,
    ReviewRequest,
    apply_bulk_accept,
    apply_draw,
    apply_link,
    apply_rescore,
    apply_review,
    apply_undo,
)
from coinlens.api.security import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    PageReader,
    PageReviewer,
    check_form_csrf,
    same,
)
from coinlens.catalog import ATTRIBUTION_LEVELS, DECISIONS, Specimen
from coinlens.export.writers import years_text
from coinlens.identify.scoring import confidence_meaning, confidence_text
from coinlens.identify.shift import SIGNAL_WORDS
from coinlens.review import (
    SPECIMEN_RECORD_FIELDS,
    TYPE_RECORD_FIELDS,
    QueueFilter,
    RecordRefused,
    ReviewConflict,
    ReviewError,
    SpecimenNotFound,
    TypeNotFound,
    bulk_accept_candidates,
    describe_changes,
    queue_counts,
    queue_page,
    recent_reviews,
    record_measures,
    record_type,
    review_summary,
)
from coinlens.review.actions import ACTIONS
from coinlens.review.audit import BatchNotFound, audit_status, batch_hold, next_audit_coin
from coinlens.review.browse import SpecimenFilter, list_specimens
from coinlens.review.details import specimen_detail, type_by_reference, type_detail
from coinlens.review.queue import QueueError, batches, cursor_of
from coinlens.review.sides import OTHER_SIDE

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
TEMPLATES.env.filters["confidence"] = lambda score: confidence_text(score, 3)
TEMPLATES.env.filters["meaning"] = confidence_meaning
TEMPLATES.env.globals["years_text"] = years_text
pages = APIRouter(include_in_schema=False)
PAGE_SIZE = 50


def render(request: Request, name: str, context: dict[str, Any], status: int = 200) -> Response:
    return TEMPLATES.TemplateResponse(request, name, context, status_code=status)


def _safe_next(target: str | None) -> str:
    """Only local paths: never redirect a signed-in user to another site."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/queue"


@pages.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str = "/", error: str | None = None) -> Response:
    token = secrets.token_urlsafe(24)
    response = render(
        request,
        "login.html",
        {"next": _safe_next(next), "error": error, "csrf": token, "user": None},
        401 if error else 200,
    )
    response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", max_age=3600)
    return response


@pages.post("/login")
def login(
    request: Request,
    name: Annotated[str, Form(max_length=255)],
    password: Annotated[str, Form(max_length=1024)],
    csrf_token: Annotated[str, Form(max_length=128)] = "",
    next: Annotated[str, Form(max_length=2048)] = "/",
) -> Response:
    if not same(csrf_token, request.cookies.get(LOGIN_CSRF_COOKIE)):
        raise HTTPException(403, "the sign-in form has expired; reload it")
    home = request.app.state.home
    principal = check_password(home.catalog, name, password)
    if principal is None:
        query = urlencode({"next": _safe_next(next), "error": "wrong name or password"})
        return RedirectResponse(f"/login?{query}", status_code=303)
    secret = start_session(home.catalog, principal, home.settings.session_hours)
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        secret,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        max_age=home.settings.session_hours * 3600,
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE)
    return response


@pages.post("/logout")
def logout(
    request: Request, user: PageReader, csrf_token: Annotated[str, Form(max_length=128)] = ""
) -> Response:
    check_form_csrf(user, csrf_token)
    end_session(request.app.state.home.catalog, request.cookies.get(SESSION_COOKIE, ""))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response


QUEUE_PARAMS = ("decision", "type", "batch", "status", "order")


def _filters(
    decision: str | None,
    type_ref: str | None,
    batch: str | None,
    status: str,
    order: str,
    reviewer: str | None = None,
) -> tuple[QueueFilter, dict[str, str]]:
    return QueueFilter(
        decision or None,
        None,
        batch or None,
        status or "backlog",
        order or "confidence",
        reviewer=reviewer,
    ), {
        k: v
        for k, v in {
            "decision": decision,
            "type": type_ref,
            "batch": batch,
            "status": status if status != "backlog" else None,
            "order": order if order != "confidence" else None,
        }.items()
        if v
    }


def _with_type(session: Any, filters: QueueFilter, type_ref: str | None) -> QueueFilter:
    """``filters`` narrowed to the suggested type of reference ``type_ref`` (none: no coin)."""
    if not type_ref:
        return filters
    found = type_by_reference(session, type_ref)
    return QueueFilter(
        filters.decision,
        found.id if found else -1,
        filters.batch,
        filters.status,
        filters.order,
        reviewer=filters.reviewer,
    )


def queue_of(session: Any, back: str | None, reviewer: str) -> QueueFilter:
    """The queue a reviewer came from (``back``, a /queue URL with its filters and order), for
    ``reviewer``; the whole backlog queue where ``back`` is another page."""
    params: dict[str, str] = {}
    if back:
        url = urlsplit(back)
        if url.path == "/queue":
            params = {k: v for k, v in parse_qsl(url.query) if k in QUEUE_PARAMS}
    try:
        filters, _ = _filters(
            params.get("decision"),
            None,
            params.get("batch"),
            params.get("status", "backlog"),
            params.get("order", "confidence"),
            reviewer,
        )
    except QueueError:
        filters = QueueFilter(reviewer=reviewer)
    return _with_type(session, filters, params.get("type"))


@pages.get("/queue", response_class=HTMLResponse)
def queue(
    request: Request,
    user: PageReader,
    decision: str | None = Query(None, max_length=32),
    type: str | None = Query(None, max_length=255),
    batch: str | None = Query(None, max_length=255),
    status: str = Query("backlog", max_length=32),
    order: str = Query("confidence", max_length=32),
    cursor: str | None = Query(None, max_length=64),
    rescored: int | None = Query(None, ge=0),
    done: int | None = Query(None, ge=0),
) -> Response:
    """Backlog coins with suggestions, the ones most in need of a human first (the ones this
    reviewer skipped last)."""
    home = request.app.state.home
    try:
        filters, params = _filters(decision, type, batch, status, order, user.name)
    except QueueError as exc:
        raise HTTPException(400, str(exc)) from None
    with home.catalog.reader() as session:
        filters = _with_type(session, filters, type)
        try:
            page = queue_page(session, filters, cursor=cursor, limit=PAGE_SIZE)
        except QueueError as exc:
            raise HTTPException(400, str(exc)) from None
        counts = queue_counts(session, filters)
        batch_names = batches(session, filters.status)
        ready = bulk_accept_candidates(session, filters.batch) if filters.batch else None
    home = request.app.state.home
    hold = batch_hold(home.catalog, filters.batch, home.settings)
    next_url = None
    if page.next_cursor:
        next_url = "/queue?" + urlencode({**params, "cursor": page.next_cursor})
    here = "/queue" + (f"?{urlencode(params)}" if params else "")
    return render(
        request,
        "queue.html",
        {
            "user": user,
            "items": page.items,
            "counts": counts,
            "params": params,
            "filters": filters,
            "decisions": DECISIONS,
            "batches": batch_names,
            "next_url": next_url,
            "ready": ready,
            "hold": hold,
            "first_page": cursor is None,
            "rescored": rescored,
            "rescore_limit": RESCORE_LIMIT,
            "here": here,
            "done": _done_notice(request, done),
            "notice": request.query_params.get("notice"),
            "message": request.query_params.get("message"),
        },
    )


@pages.post("/queue/rescore")
def rescore_form(
    request: Request,
    user: PageReviewer,
    csrf_token: Annotated[str, Form(max_length=128)] = "",
    decision: Annotated[str | None, Form(max_length=32)] = None,
    type: Annotated[str | None, Form(max_length=255)] = None,
    batch: Annotated[str | None, Form(max_length=255)] = None,
    status: Annotated[str, Form(max_length=32)] = "backlog",
    order: Annotated[str, Form(max_length=32)] = "confidence",
) -> Response:
    """The queue's "match again" button: the listed coins against the references now."""
    check_form_csrf(user, csrf_token)
    try:
        _, params = _filters(decision, type, batch, status, order)
        body = RescoreRequest(
            status=status, decision=decision or None, batch=batch or None, type=type or None
        )
    except (QueueError, ValueError) as exc:
        raise HTTPException(400, str(exc).splitlines()[0]) from None
    result = apply_rescore(request, user.name, body)
    query = urlencode({**params, "rescored": result["matched"]})
    return RedirectResponse(f"/queue?{query}", status_code=303)


def _place_in_queue(request: Request, specimen_id: int, back: str | None, reviewer: str):
    """The coin's place in the queue the reviewer came from, before they act on it."""
    with request.app.state.home.catalog.reader() as session:
        filters = queue_of(session, back, reviewer)
        return filters, cursor_of(session, filters, specimen_id)


def _next_in_queue(
    request: Request,
    specimen_id: int,
    back: str | None,
    place: tuple[QueueFilter, str | None],
    done: int | None = None,
    reviewer: str = "",
) -> str:
    """Where to go after acting on a coin: the next one in the same filtered, ordered queue it
    was taken from (from its start again at the end; ``place``: where the coin stood), saying
    what was saved (``done``, the review's id, for its undo); the queue itself once empty."""
    audited = _audit_batch(back)
    if audited is not None:  # from an audit: its next drawn coin for this reviewer
        query = {"back": back} if back else {}
        if done is not None:
            query["done"] = str(done)
        catalog = request.app.state.home.catalog
        following_id = next_audit_coin(catalog, audited, reviewer=reviewer)
        if following_id is not None and following_id != specimen_id:
            return f"/specimens/{following_id}?{urlencode(query)}"
        return _safe_next(back) + (f"?{urlencode({'done': done})}" if done is not None else "")
    filters, cursor = place
    with request.app.state.home.catalog.reader() as session:
        following = queue_page(session, filters, cursor=cursor, limit=1).items if cursor else []
        if not following:
            following = [
                item
                for item in queue_page(session, filters, limit=2).items
                if item["id"] != specimen_id
            ]
    query = {"back": back} if back else {}
    if done is not None:
        query["done"] = str(done)
    if following:
        return f"/specimens/{following[0]['id']}?{urlencode(query)}"
    target = _safe_next(back)
    if done is not None:
        target += ("&" if "?" in target else "?") + urlencode({"done": done})
    return target


@pages.get("/specimens/{specimen_id}", response_class=HTMLResponse)
def specimen_page(
    request: Request, specimen_id: int, user: PageReader, back: str | None = None
) -> Response:
    """A coin beside its suggested types' reference coins, with the review actions."""
    params = request.query_params
    return _specimen_page(
        request,
        user,
        specimen_id,
        back,
        message=params.get("message"),
        notice=params.get("notice"),
        done=_done(params.get("done")),
    )


def _done(text: str | None) -> int | None:
    return int(text) if text and text.isdigit() else None


def _done_notice(request: Request, done: int | None) -> dict[str, Any] | None:
    """The review just saved (``done``, its id), for the notice with its undo button."""
    if done is None:
        return None
    with request.app.state.home.catalog.reader() as session:
        return review_summary(session, done)


def _specimen_page(
    request: Request,
    user: Any,
    specimen_id: int,
    back: str | None,
    *,
    message: str | None = None,
    notice: str | None = None,
    typed: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    saved: dict[str, Any] | None = None,
    done: int | None = None,
    status: int = 200,
) -> Response:
    """The specimen page; ``typed``: what a refused form held (and the version its reviewer
    saw), shown again to be put right instead of typed anew, with ``errors`` beside its fields;
    ``saved``: after a conflict, what the other reviewer saved, beside what was typed."""
    with request.app.state.home.catalog.reader() as session:
        detail = specimen_detail(session, specimen_id)
    if detail is None:
        raise HTTPException(404, f"specimen {specimen_id} does not exist")
    return render(
        request,
        "specimen.html",
        {
            "user": user,
            "s": {**detail, **(typed or {})},
            "back": _safe_next(back),
            "back_label": _back_label(back),
            "can_review": user.can("reviewer"),
            "in_queue": detail["status"] in ("backlog", "in_review"),
            "levels": ATTRIBUTION_LEVELS,
            "message": message,
            "notice": notice,
            "errors": errors or {},
            "saved": saved or {},
            "done": _done_notice(request, done),
        },
        status,
    )


def _back_label(back: str | None) -> str:
    """What "back" returns to, in words."""
    target = _safe_next(back)
    url = urlsplit(target)
    if url.path != "/queue":
        return "back"
    params = dict(parse_qsl(url.query))
    name = "flagged coins" if params.get("status") == "in_review" else "the queue"
    narrowed = [
        f"{label} {params[key].replace('_', ' ')}"
        for key, label in (("batch", "batch"), ("decision", ""), ("type", "type"))
        if params.get(key)
    ]
    return f"back to {name}" + (f" ({', '.join(n.strip() for n in narrowed)})" if narrowed else "")


@pages.post("/specimens/{specimen_id}/review")
def review_form(
    request: Request,
    specimen_id: int,
    user: PageReviewer,
    action: Annotated[str, Form(max_length=32)],
    version: Annotated[int, Form()],
    csrf_token: Annotated[str, Form(max_length=128)] = "",
    type_id: Annotated[int | None, Form()] = None,
    type_reference: Annotated[str | None, Form(max_length=255)] = None,
    add_type: Annotated[bool, Form()] = False,
    comment: Annotated[str | None, Form(max_length=4000)] = None,
    back: Annotated[str | None, Form(max_length=2048)] = None,
) -> Response:
    check_form_csrf(user, csrf_token)
    if action not in ACTIONS or action in ("reattribute", "partial"):
        raise HTTPException(400, f"unknown action {action!r}")
    body = ReviewRequest(
        action=action,
        type_id=type_id,
        type=(type_reference or None) if type_id is None else None,
        add_type=add_type,
        version=version,
        comment=comment,
    )
    place = _place_in_queue(request, specimen_id, back, user.name)
    try:
        state = apply_review(request, specimen_id, user.name, body)
    except HTTPException as exc:
        if exc.status_code in (400, 409):
            return _back_to(f"/specimens/{specimen_id}", exc.detail, back)
        raise
    target = _next_in_queue(request, specimen_id, back, place, state["review_id"], user.name)
    return RedirectResponse(target, status_code=303)


@pages.post("/specimens/{specimen_id}/partial")
async def partial_form(
    request: Request,
    specimen_id: int,
    user: PageReviewer,
) -> Response:
    """The levels a reviewer is sure of (each ticked ``sure`` with its ``value_<level>``), kept
    as the coin's partial attribution; the coin stays in review for its exact type."""
    form = await request.form()
    check_form_csrf(user, str(form.get("csrf_token") or ""))
    back = str(form.get("back") or "") or None
    path = f"/specimens/{specimen_id}"
    sure = [str(level) for level in form.getlist("sure")]
    attribution = {level: str(form.get(f"value_{level}") or "") for level in sure}
    try:
        version = int(str(form.get("version")))
    except ValueError:
        raise HTTPException(400, "version: a whole number") from None
    if not sure:
        return _back_to(path, "tick the levels you are sure of", back)
    body = ReviewRequest(action="partial", attribution=attribution, version=version)
    return await run_in_threadpool(_reviewed_here, request, specimen_id, user.name, body, back)


def _reviewed_here(
    request: Request, specimen_id: int, reviewer: str, body: ReviewRequest, back: str | None
) -> Response:
    """Apply a review from the coin's page and come back to it with the "Saved" notice; a
    refusal (400, 409) comes back as the page's message."""
    path = f"/specimens/{specimen_id}"
    try:
        state = apply_review(request, specimen_id, reviewer, body)
    except HTTPException as exc:
        if exc.status_code in (400, 409):
            return _back_to(path, exc.detail, back)
        raise
    query = urlencode({"done": state["review_id"], **({"back": back} if back else {})})
    return RedirectResponse(f"{path}?{query}", status_code=303)


@pages.post("/specimens/{specimen_id}/reattribute")
def reattribute_form(
    request: Request,
    specimen_id: int,
    user: PageReviewer,
    version: Annotated[int, Form()],
    type_reference: Annotated[str, Form(max_length=255)],
    comment: Annotated[str, Form(max_length=4000)] = "",
    confirmed: Annotated[bool, Form()] = False,
    csrf_token: Annotated[str, Form(max_length=128)] = "",
    back: Annotated[str | None, Form(max_length=2048)] = None,
) -> Response:
    """A catalogued coin given another type on purpose: the type and the reason, then a
    confirmation page saying what will change; only the confirmed form changes it."""
    check_form_csrf(user, csrf_token)
    path = f"/specimens/{specimen_id}"
    reference, reason = type_reference.strip(), comment.strip()
    if not reference or not reason:
        return _back_to(path, "re-attribute: choose the type and give the reason", back)
    with request.app.state.home.catalog.reader() as session:
        chosen = type_by_reference(session, reference)
        detail = specimen_detail(session, specimen_id)
    if detail is None:
        raise HTTPException(404, f"specimen {specimen_id} does not exist")
    if chosen is None:
        return _back_to(path, f"re-attribute: type {reference!r} is not in the catalogue", back)
    if not confirmed:
        return render(
            request,
            "reattribute.html",
            {
                "user": user,
                "s": detail,
                "to_type": {"id": chosen.id, "reference": chosen.reference},
                "reason": reason,
                "version": version,
                "back": _safe_next(back),
            },
        )
    body = ReviewRequest(action="reattribute", type_id=chosen.id, version=version, comment=reason)
    return _reviewed_here(request, specimen_id, user.name, body, back)


@pages.get("/reviews", response_class=HTMLResponse)
def reviews_page(request: Request, user: PageReader) -> Response:
    """The signed-in reviewer's recent actions, newest first, each undoable from here."""
    params = request.query_params
    with request.app.state.home.catalog.reader() as session:
        items = recent_reviews(session, user.name, limit=50)
    return render(
        request,
        "reviews.html",
        {
            "user": user,
            "items": items,
            "message": params.get("message"),
            "notice": params.get("notice"),
        },
    )


@pages.post("/reviews/{review_id}/undo")
def undo_form(
    request: Request,
    review_id: int,
    user: PageReviewer,
    csrf_token: Annotated[str, Form(max_length=128)] = "",
    back: Annotated[str | None, Form(max_length=2048)] = None,
) -> Response:
    """Undo button (the notice after an action, the recent actions page): back where it was
    pressed, saying what was restored, or why it was refused."""
    check_form_csrf(user, csrf_token)
    target = _safe_next(back or "/reviews")
    try:
        state = apply_undo(request, review_id, user.name)
    except HTTPException as exc:
        if exc.status_code in (400, 404, 409):
            return _notice_at(target, exc.detail if isinstance(exc.detail, str) else str(exc))
        raise
    count = len(state["specimen_ids"])
    what = state["undid_action"].replace("_", " ")
    done = (
        f"undone: the {what} of {count} coins"
        if count > 1 and what == "bulk accept"
        else f"undone: {what} of {state['accession']} (now {state['status'].replace('_', ' ')})"
    )
    return _notice_at(target, done, done=True)


def _notice_at(target: str, text: str, *, done: bool = False) -> Response:
    """Redirect to ``target`` (a local path, its query kept) with a message or a notice."""
    url = urlsplit(target)
    query = [(k, v) for k, v in parse_qsl(url.query) if k not in ("message", "notice", "done")]
    query.append(("notice" if done else "message", text))
    return RedirectResponse(f"{url.path}?{urlencode(query)}", status_code=303)


def _shown(value: Any) -> str:
    """A record's value as its form shows it."""
    if value is None:
        return ""
    return f"{value:g}" if isinstance(value, float) else str(value)


def _saved(changes: dict[str, list]) -> str:
    return f"saved: {describe_changes(changes)}" if changes else "nothing changed"


def _back_to(
    path: str,
    message: str,
    back: str | None = None,
    *,
    done: bool = False,
    review_id: int | None = None,
) -> Response:
    """Redirect to a page with a refusal's reason (``message``) or, ``done``, what was saved
    (``notice``; ``review_id``: the review that undoes it)."""
    query = {"notice" if done else "message": message, **({"back": back} if back else {})}
    if review_id is not None:
        query["done"] = str(review_id)
    return RedirectResponse(f"{path}?{urlencode(query)}", status_code=303)


@pages.post("/specimens/{specimen_id}/record")
async def measures_form(
    request: Request,
    specimen_id: int,
    user: PageReviewer,
    version: Annotated[int, Form()],
    csrf_token: Annotated[str, Form(max_length=128)] = "",
    back: Annotated[str | None, Form(max_length=2048)] = None,
) -> Response:
    """The specimen page's record: weight, diameter, die axis and note as typed (blank
    clears). Refused values come back beside their fields, all at once; after someone else's
    change, what was typed comes back beside what they saved."""
    check_form_csrf(user, csrf_token)
    form = await request.form()
    values = {name: str(form.get(name) or "") for name in SPECIMEN_RECORD_FIELDS if name in form}
    path = f"/specimens/{specimen_id}"
    typed = {**values, "version": version}
    try:
        state = record_measures(
            request.app.state.home.catalog,
            specimen_id,
            reviewer=user.name,
            expected_version=version,
            values=values,
        )
    except SpecimenNotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except RecordRefused as exc:
        return _specimen_page(
            request, user, specimen_id, back, message=str(exc), typed=typed,
            errors=exc.errors, status=400,
        )  # fmt: skip
    except ReviewError as exc:
        return _specimen_page(
            request, user, specimen_id, back, message=str(exc), typed=typed, status=400
        )
    except ReviewConflict as exc:
        with request.app.state.home.catalog.reader() as session:
            now = specimen_detail(session, specimen_id)
        saved = {name: now[name] for name in values if _shown(now[name]) != values[name].strip()}
        return _specimen_page(
            request,
            user,
            specimen_id,
            back,
            message=f"{exc}. What you typed is kept below, beside what was saved: save again "
            "to keep yours",
            typed={**values, "version": now["version"]},
            saved=saved,
            status=409,
        )
    return _back_to(
        path, _saved(state["changed"]), back, done=True, review_id=state.get("review_id")
    )


@pages.post("/specimens/{specimen_id}/link")
def link_form(
    request: Request,
    specimen_id: int,
    user: PageReviewer,
    version: Annotated[int, Form()],
    other: Annotated[str, Form(max_length=255)],
    side: Annotated[str, Form(max_length=16)],
    csrf_token: Annotated[str, Form(max_length=128)] = "",
    back: Annotated[str | None, Form(max_length=2048)] = None,
) -> Response:
    """The specimen page's "Link sides": another specimen's photos become this coin's other
    side; back to the coin, matched again on both sides, or to the reason it was refused."""
    check_form_csrf(user, csrf_token)
    path = f"/specimens/{specimen_id}"
    if side not in OTHER_SIDE:
        return _back_to(path, f"side {side!r}: obverse or reverse", back)
    if not other.strip():
        return _back_to(
            path, "give the accession of the coin whose photos are the other side", back
        )
    body = LinkRequest(other=other.strip(), side=side, version=version)
    try:
        state = apply_link(request, specimen_id, user.name, body)
    except HTTPException as exc:
        if exc.status_code in (400, 409):
            return _back_to(path, exc.detail, back)
        raise
    done = f"linked: {state['linked']}'s photos are this coin's {OTHER_SIDE[side]}"
    if state["matched"]:
        done += "; matched again on both sides"
    return _back_to(path, done, back, done=True, review_id=state["review_id"])


@pages.get("/bulk-accept", response_class=HTMLResponse)
def bulk_accept_page(
    request: Request, user: PageReviewer, batch: str | None = Query(None, max_length=255)
) -> Response:
    home = request.app.state.home
    hold = batch_hold(home.catalog, batch, home.settings)
    with home.catalog.reader() as session:
        count = bulk_accept_candidates(session, batch)
    return render(
        request, "bulk_accept.html", {"user": user, "batch": batch, "count": count, "hold": hold}
    )


@pages.post("/bulk-accept")
def bulk_accept_form(
    request: Request,
    user: PageReviewer,
    expected_count: Annotated[int, Form(ge=0)],
    csrf_token: Annotated[str, Form(max_length=128)] = "",
    batch: Annotated[str | None, Form(max_length=255)] = None,
) -> Response:
    check_form_csrf(user, csrf_token)
    try:
        result = apply_bulk_accept(request, user.name, batch or None, expected_count)
    except HTTPException as exc:
        if exc.status_code != 409:
            raise
        home = request.app.state.home
        with home.catalog.reader() as session:
            count = bulk_accept_candidates(session, batch or None)
        hold = batch_hold(home.catalog, batch or None, home.settings)
        return render(
            request,
            "bulk_accept.html",
            {"user": user, "batch": batch, "count": count, "hold": hold, "refused": exc.detail},
            status=409,
        )
    message = f"accepted {result['accepted']} coins" + (f" of batch {batch}" if batch else "")
    return render(
        request,
        "bulk_accept.html",
        {
            "user": user,
            "batch": batch,
            "count": 0,
            "done": message,
            "review_id": result["review_id"],
        },
    )


AUDIT_PATH = re.compile(r"^/batches/([^/?#]+)/audit")


def _audit_batch(back: str | None) -> str | None:
    """The batch whose audit page ``back`` is, if it is one."""
    found = AUDIT_PATH.match(back or "")
    return unquote(found.group(1)) if found else None


def history_svg(history: list[dict[str, Any]], required: float) -> str:
    """The audit's precision and its lower bound after each review, as a small line chart
    (inline SVG: no script, works offline)."""
    if not history:
        return ""
    width, height, pad = 360, 140, 28
    count = len(history)

    def x(i: int) -> float:
        return pad + (width - 2 * pad) * (i / max(count - 1, 1))

    def y(v: float) -> float:
        return height - pad - (height - 2 * pad) * v

    def line(key: str) -> str:
        return " ".join(f"{x(i):.1f},{y(h[key]):.1f}" for i, h in enumerate(history))

    return (
        f'<svg id="audit-history" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" aria-label="precision and its 95% lower bound after '
        f'each review">'
        f'<line x1="{pad}" x2="{width - pad}" y1="{y(required):.1f}" y2="{y(required):.1f}" '
        f'stroke="#b45309" stroke-dasharray="4 3"/>'
        f'<text x="{width - pad}" y="{y(required) - 4:.1f}" text-anchor="end" font-size="10">'
        f"needed {required:.2f}</text>"
        f'<polyline fill="none" stroke="#2563eb" stroke-width="2" points="{line("precision")}"/>'
        f'<polyline fill="none" stroke="#16a34a" stroke-width="2" '
        f'points="{line("lower_bound")}"/>'
        f'<text x="{pad}" y="{height - 8}" font-size="10">1</text>'
        f'<text x="{width - pad}" y="{height - 8}" font-size="10" text-anchor="end">'
        f"{count} reviewed</text>"
        f'<text x="4" y="{y(1.0) + 4:.1f}" font-size="10">1</text>'
        f'<text x="4" y="{y(0.0) + 4:.1f}" font-size="10">0</text>'
        "</svg>"
    )


@pages.get("/batches/{batch}/audit", response_class=HTMLResponse)
def audit_page(request: Request, batch: str, user: PageReader) -> Response:
    """A batch's shift and audit: draw a sample, review it coin by coin, see the verdict."""
    home = request.app.state.home
    try:
        status = audit_status(home.catalog, batch, home.settings)
    except BatchNotFound as exc:
        raise HTTPException(404, str(exc)) from None
    with home.catalog.reader() as session:
        accessions = dict(
            session.execute(
                select(Specimen.id, Specimen.accession).where(
                    Specimen.id.in_([c["specimen_id"] for c in status["coins"]])
                )
            ).all()
        )
    params = request.query_params
    return render(
        request,
        "audit.html",
        {
            "user": user,
            "batch": batch,
            "status": status,
            "accessions": accessions,
            "signal_words": SIGNAL_WORDS,
            "chart": Markup(history_svg(status["history"], status["required"])),
            "default_draw": home.settings.audit_sample,
            "here": f"/batches/{quote(batch, safe='')}/audit",
            "rescore_limit": RESCORE_LIMIT,
            "done": _done_notice(request, _done(params.get("done"))),
            "notice": params.get("notice"),
            "message": params.get("message"),
        },
    )


@pages.post("/batches/{batch}/audit/draw")
def audit_draw_form(
    request: Request,
    batch: str,
    user: PageReviewer,
    n: Annotated[int, Form(ge=1, le=1000)],
    csrf_token: Annotated[str, Form(max_length=128)] = "",
    purpose: Annotated[str, Form(max_length=16)] = "bound",
) -> Response:
    check_form_csrf(user, csrf_token)
    here = f"/batches/{quote(batch, safe='')}/audit"
    try:
        result = apply_draw(request, batch, user.name, n, purpose)
    except HTTPException as exc:
        if exc.status_code in (400, 409):
            return _back_to(here, exc.detail)
        raise
    count = len(result["drawn_now"])
    return _back_to(here, f"drew {count} coin{'s' if count != 1 else ''} into the audit", done=True)


@pages.post("/batches/{batch}/audit/next")
def audit_next_form(
    request: Request,
    batch: str,
    user: PageReviewer,
    csrf_token: Annotated[str, Form(max_length=128)] = "",
) -> Response:
    """Open the next drawn coin for this reviewer (held for them), or say none is left."""
    check_form_csrf(user, csrf_token)
    here = f"/batches/{quote(batch, safe='')}/audit"
    specimen_id = next_audit_coin(request.app.state.home.catalog, batch, reviewer=user.name)
    if specimen_id is None:
        return _back_to(here, "no drawn coin is left for you to review", done=True)
    return RedirectResponse(
        f"/specimens/{specimen_id}?{urlencode({'back': here})}", status_code=303
    )


@pages.get("/types/{type_id}", response_class=HTMLResponse)
def type_page(
    request: Request,
    type_id: int,
    user: PageReader,
    after: str | None = Query(None, max_length=255),
    edit: bool = False,
) -> Response:
    """A type: its record (read-only until "edit"), its backlog, and all its catalogued coins
    with both sides, paged (``after``: the last accession seen)."""
    params = request.query_params
    return _type_page(
        request,
        user,
        type_id,
        message=params.get("message"),
        notice=params.get("notice"),
        after=after,
        edit=edit,
    )


def _type_page(
    request: Request,
    user: Any,
    type_id: int,
    *,
    message: str | None = None,
    notice: str | None = None,
    typed: dict[str, Any] | None = None,
    status: int = 200,
    after: str | None = None,
    edit: bool = False,
) -> Response:
    """The type page; ``typed`` as for ``_specimen_page`` (the record opens for editing)."""
    with request.app.state.home.catalog.reader() as session:
        detail = type_detail(session, type_id)
        if detail is None:
            raise HTTPException(404, f"type {type_id} does not exist")
        coins = list_specimens(
            session, SpecimenFilter(type_id=type_id, status="catalogued"), after=after, limit=24
        )
    next_url = f"/types/{type_id}?{urlencode({'after': coins['next']})}" if coins["next"] else None
    return render(
        request,
        "type.html",
        {
            "user": user,
            "t": {**detail, **(typed or {})},
            "fields": TYPE_RECORD_FIELDS,
            "labels": TYPE_LABELS,
            "can_review": user.can("reviewer"),
            "editing": user.can("reviewer") and (edit or typed is not None),
            "coins": coins["items"],
            "next_url": next_url,
            "first_page": after is None,
            "message": message,
            "notice": notice,
        },
        status,
    )


# a type record's fields in words
TYPE_LABELS = {
    "uri": "Type URI",
    "authority": "Authority",
    "authority_uri": "Authority (nomisma)",
    "mint": "Mint",
    "mint_uri": "Mint (nomisma)",
    "denomination": "Denomination",
    "denomination_uri": "Denomination (nomisma)",
    "date_from": "From (year)",
    "date_to": "To (year)",
    "material": "Material",
    "material_uri": "Material (nomisma)",
    "description": "Description",
}


@pages.post("/types/{type_id}/record")
async def type_record_form(
    request: Request,
    type_id: int,
    user: PageReviewer,
    version: Annotated[int, Form()],
    csrf_token: Annotated[str, Form(max_length=128)] = "",
) -> Response:
    """The type page's record: each field as typed (blank clears). A refused value: the page
    again with what was typed; someone else's change meanwhile: the page as it is now, saying
    who."""
    check_form_csrf(user, csrf_token)
    form = await request.form()
    # as typed, whole: a value too long is refused by the record's limits, never cut short
    values = {name: str(form.get(name) or "") for name in TYPE_RECORD_FIELDS if name in form}
    path = f"/types/{type_id}"
    try:
        state = record_type(
            request.app.state.home.catalog,
            type_id,
            reviewer=user.name,
            expected_version=version,
            values=values,
        )
    except TypeNotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except ReviewConflict as exc:
        return _back_to(path, str(exc))
    except ReviewError as exc:
        typed = {**values, "version": version}
        return _type_page(request, user, type_id, message=str(exc), typed=typed, status=400)
    return _back_to(path, _saved(state["changed"]), done=True)
