"""Audits: a batch earns auto-accept from a reviewed random sample of its candidates.

``draw_sample`` draws coins the model would auto-accept, at random and spread over the
suggested types in proportion (systematic sampling over the candidates sorted by type), and
records who drew them. Each drawn coin is reviewed like any other (accept: right; another
type: wrong); ``next_audit_coin`` hands each reviewer a coin no other reviewer holds, so two
reviewers never review the same coin. ``audit_status`` says what the reviews show: precision,
its one-sided 95% lower bound, whether the batch's auto-accept is allowed and, if not, how many
more reviews would settle it. An interrupted audit simply resumes: the drawn coins not yet
reviewed are still there.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

import numpy as np
from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError

from coinlens.catalog import AuditSample, BatchCheck, Catalog, Specimen
from coinlens.catalog.models import utcnow
from coinlens.catalog.queries import audit_outcomes
from coinlens.config import Settings
from coinlens.identify.acceptance import lower_bound
from coinlens.identify.batches import (
    audit_verdict,
    candidates_query,
    counted_outcomes,
    holds,
    latest_check,
    refresh_hold,
)
from coinlens.review.actions import ReviewConflict, ReviewError

CLAIM_MINUTES = 30  # a reviewer's hold on a drawn coin lapses after this long
MAX_DRAW = 1000


class AuditError(ReviewError):
    """The audit cannot do what was asked (no such batch, nothing to draw, a bad number)."""


class BatchNotFound(AuditError):
    """No coin of this batch was identified."""


def _check_of(session, batch: str) -> BatchCheck:
    check = latest_check(session, batch)
    if check is None:
        raise BatchNotFound(f"batch {batch!r}: no coin of it was identified")
    return check


def systematic_sample(type_ids: list[int | None], n: int, rng: np.random.Generator) -> list[int]:
    """Positions of ``n`` of the candidates (their suggested ``type_ids``), drawn at random in
    proportion to each type: shuffled, sorted by type, then every (N/n)th from a random start."""
    count = len(type_ids)
    if n >= count:
        return list(range(count))
    order = rng.permutation(count)
    order = order[np.argsort([type_ids[i] or 0 for i in order], kind="stable")]
    step = count / n
    start = rng.uniform(0, step)
    return sorted(int(order[int(start + i * step)]) for i in range(n))


PURPOSES = ("bound", "teach")


def teaching_choice(rows: list[tuple[int, int | None, float]], n: int) -> list[int]:
    """Positions of ``n`` coins (id, suggested type, confidence) whose reviews teach the
    batch's calibration most: the least confident of each suggested type first, taking the
    types in turn, so that every type the batch is suggested as gets its uncertain coins
    reviewed."""
    by_type: dict[int | None, list[int]] = {}
    for position in sorted(range(len(rows)), key=lambda i: (rows[i][2], rows[i][0])):
        by_type.setdefault(rows[position][1], []).append(position)
    queues = sorted(by_type.values(), key=len, reverse=True)
    chosen: list[int] = []
    while len(chosen) < n and any(queues):
        for queue in queues:
            if queue and len(chosen) < n:
                chosen.append(queue.pop(0))
    return chosen


def draw_sample(
    catalog: Catalog,
    batch: str,
    *,
    n: int,
    reviewer: str,
    seed: int | None = None,
    purpose: str = "bound",
) -> list[int]:
    """Draw ``n`` more coins into the batch's audit (fewer where fewer are left); returns their
    specimen ids. ``purpose`` "bound": at random from the auto-accept candidates (they judge
    the batch); "teach": from any of its coins waiting, where a review teaches its calibration
    most (``teaching_choice``; reviewed, they refit it on Match again but are not counted in
    the bound, which only a random sample can give)."""
    if not 1 <= n <= MAX_DRAW:
        raise AuditError(f"draw between 1 and {MAX_DRAW} coins, not {n}")
    if purpose not in PURPOSES:
        raise AuditError(f"purpose {purpose!r}: use one of {', '.join(PURPOSES)}")
    with catalog.session() as session:
        check = _check_of(session, batch)
        drawn = select(AuditSample.specimen_id).where(AuditSample.batch == batch)
        if purpose == "teach":
            waiting = session.execute(
                select(Specimen.id, Specimen.suggested_type_id, Specimen.suggestion_score)
                .where(Specimen.batch == batch, Specimen.status == "backlog")
                .where(Specimen.suggested_type_id.is_not(None), Specimen.id.not_in(drawn))
                .order_by(Specimen.id)
            ).all()
            if not waiting:
                raise AuditError(f"batch {batch!r}: no coin with a suggestion is left to draw")
            picked = [waiting[i] for i in teaching_choice([tuple(r) for r in waiting], n)]
            return _record(session, batch, check, picked, reviewer, purpose)
        rows = session.execute(
            select(Specimen.id, Specimen.suggested_type_id)
            .where(Specimen.id.in_(candidates_query(batch, check.model_version_id)))
            .where(Specimen.status == "backlog", Specimen.id.not_in(drawn))
            .order_by(Specimen.id)
        ).all()
        if not rows:
            total = session.scalar(
                select(Specimen.id).where(
                    Specimen.id.in_(candidates_query(batch, check.model_version_id))
                )
            )
            raise AuditError(
                f"batch {batch!r}: every auto-accept candidate is drawn or reviewed already"
                if total is not None
                else f"batch {batch!r} has no auto-accept candidates: the model would accept "
                "none of its coins without a human, so there is nothing to audit (its coins "
                "are in the review queue)"
            )
        rng = np.random.default_rng(seed if seed is not None else secrets.randbits(64))
        chosen = [rows[i] for i in systematic_sample([r[1] for r in rows], n, rng)]
        return _record(session, batch, check, chosen, reviewer, purpose)


def _record(session, batch: str, check: BatchCheck, chosen, reviewer: str, purpose: str):
    now = utcnow()
    for specimen_id, type_id, *_ in chosen:
        session.add(
            AuditSample(
                batch=batch,
                specimen_id=specimen_id,
                model_version_id=check.model_version_id,
                suggested_type_id=type_id,
                purpose=purpose,
                drawn_by=reviewer,
                drawn_at=now,
            )
        )
    try:
        session.flush()
    except IntegrityError:
        raise ReviewConflict(
            f"batch {batch!r}: someone drew coins into this audit at the same moment; look again"
        ) from None
    return [row[0] for row in chosen]


def _pending(session, batch: str) -> list[int]:
    """Drawn coins without a person's review yet, still waiting (not catalogued otherwise)."""
    outcomes = [o for o in audit_outcomes(session, batch) if o.right is None]
    if not outcomes:
        return []
    waiting = set(
        session.scalars(
            select(Specimen.id).where(
                Specimen.id.in_([o.specimen_id for o in outcomes]),
                Specimen.status != "catalogued",
            )
        )
    )
    return [o.specimen_id for o in outcomes if o.specimen_id in waiting]


def next_audit_coin(catalog: Catalog, batch: str, *, reviewer: str) -> int | None:
    """A drawn coin for ``reviewer`` to review next, held for them (their own held coin first,
    then one nobody holds or whose hold lapsed); None when none is left for them."""
    with catalog.session() as session:
        _check_of(session, batch)
        pending = _pending(session, batch)
        if not pending:
            return None
        rows = session.execute(
            select(AuditSample.specimen_id, AuditSample.claimed_by, AuditSample.claimed_at)
            .where(AuditSample.batch == batch, AuditSample.specimen_id.in_(pending))
            .order_by(AuditSample.id)
        ).all()
        now = utcnow()
        lapsed = now - timedelta(minutes=CLAIM_MINUTES)
        mine = [r[0] for r in rows if r[1] == reviewer]
        if mine:
            return mine[0]
        for specimen_id, _, _ in rows:
            claimed = session.execute(
                update(AuditSample)
                .where(AuditSample.batch == batch, AuditSample.specimen_id == specimen_id)
                .where(or_(AuditSample.claimed_by.is_(None), AuditSample.claimed_at < lapsed))
                .values(claimed_by=reviewer, claimed_at=now)
                .execution_options(synchronize_session=False)
            ).rowcount
            if claimed == 1:
                return specimen_id
        return None


def audit_status(catalog: Catalog, batch: str, settings: Settings) -> dict[str, Any]:
    """What the batch's audit shows (the shape of ``GET /api/v1/batches/{batch}/audit``); the
    batch's candidates are given the decision it allows now."""
    with catalog.session() as session:
        check = _check_of(session, batch)
        held = refresh_hold(session, batch, settings)
        outcomes = audit_outcomes(session, batch)
        verdict = audit_verdict(session, batch, settings)
        candidates = len(session.scalars(candidates_query(batch, check.model_version_id)).all())
        waiting = session.scalar(
            select(Specimen.id)
            .where(Specimen.batch == batch, Specimen.status == "backlog")
            .where(Specimen.decision == "auto_accept")
            .limit(1)
        )
        shift = check.shift or {}
        scope = check.audit_scope or {}
        pending = _pending(session, batch)
        reviewed = sorted(counted_outcomes(session, batch), key=lambda o: o.review_id or 0)
        history, right = [], 0
        for number, outcome in enumerate(reviewed, start=1):
            right += bool(outcome.right)
            history.append(
                {
                    "reviewed": number,
                    "precision": round(right / number, 4),
                    "lower_bound": round(lower_bound(right, number), 4),
                }
            )
        if not check.shifted and not holds(False, verdict):
            message = "photographed like the calibration coins: auto-accept needs no audit"
            if verdict.reviewed:
                message += (
                    f"; its audit so far: {verdict.reviewed - verdict.wrong} of "
                    f"{verdict.reviewed} right (95% lower bound {verdict.lower_bound:.3f})"
                )
        else:
            message = verdict.sentence()
        return {
            "batch": batch,
            "model_version": check.model_version_id,
            "shift": {
                "score": check.score,
                "threshold": check.threshold,
                "shifted": check.shifted,
                "n": check.n,
                "reason": shift.get("reason", ""),
                "signals": shift.get("signals", {}),
            },
            "candidates": candidates,
            "sample": pending,
            "drawn": len(outcomes),
            "reviewed": verdict.reviewed,
            "wrong": verdict.wrong,
            "precision": round(verdict.precision, 4) if verdict.precision is not None else None,
            "lower_bound": round(verdict.lower_bound, 4),
            "required": verdict.required,
            "auto_accept_allowed": not held,
            "held": held,
            "more_needed": None if not held else verdict.more_needed,
            "ready_to_accept": waiting is not None,
            "message": message,
            "history": history,
            "coins": [
                {
                    "specimen_id": o.specimen_id,
                    "drawn_by": o.drawn_by,
                    "held_by": o.claimed_by,
                    "reviewer": o.reviewer,
                    "right": o.right,
                    "purpose": o.purpose,
                    "counts": o.right is not None
                    and o.purpose == "bound"
                    and scope.get(str(o.specimen_id), True),
                    "review_id": o.review_id,
                }
                for o in outcomes
            ],
        }


def refresh_after_review(catalog: Catalog, specimen_ids: list[int], settings: Settings) -> None:
    """After a review or an undo of audited coins: their batches' holds, settled again."""
    with catalog.session() as session:
        batches = set(
            session.scalars(
                select(AuditSample.batch).where(AuditSample.specimen_id.in_(specimen_ids))
            )
        )
        for batch in batches:
            refresh_hold(session, batch, settings)


def batch_hold(catalog: Catalog, batch: str | None, settings: Settings) -> dict[str, Any] | None:
    """For the queue and bulk-accept pages: whether the batch's auto-accept is held, and why
    (None for no batch, or one never identified)."""
    if not batch:
        return None
    try:
        status = audit_status(catalog, batch, settings)
    except BatchNotFound:
        return None
    return {
        "held": status["held"],
        "shifted": status["shift"]["shifted"],
        "reason": status["shift"]["reason"],
        "message": status["message"],
    }
