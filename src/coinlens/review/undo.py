"""Undo: a review action reversed by a new, audited action, never by deleting history.

Each review keeps the values it replaced (``Review.before``) and wrote (``Review.after``). An undo
writes ``before`` back only while every value of ``after`` still stands: where someone changed
one of them since (a correction, a re-attribution, an edit of the same measure) the undo is
refused, naming them, and nothing changes. A bulk accept is undone whole (its reviews share a
``group_id``); a link parts the two coins again (``sides.undo_link``). The undo is a review of its
own (action ``undo``, ``undoes_id`` the review reversed), in the coin's trail like any other.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, aliased

from coinlens.catalog import Catalog, QueueSkip, Review, Specimen, type_references
from coinlens.catalog.models import utcnow
from coinlens.review.actions import (
    ReviewConflict,
    ReviewError,
    specimen_state,
    update_if_unchanged,
)
from coinlens.review.sides import undo_link

RECENT = 20  # the reviewer's list of recent actions holds at least this many


class ReviewNotFound(ReviewError):
    """No review has that id."""


def _what(review: Review) -> str:
    return f"review {review.id} ({review.action.replace('_', ' ')} by {review.reviewer})"


def undo_review(
    catalog: Catalog, review_id: int, *, reviewer: str, comment: str | None = None
) -> dict[str, Any]:
    """Undo review ``review_id`` (all of its bulk accept); return the specimen's state after it,
    with ``review_id`` (the undo's own review), ``undid`` and ``specimen_ids`` (every coin it
    restored). Refused: ``ReviewNotFound``; ``ReviewError`` for an undo or a review recorded
    before undo was kept; ``ReviewConflict`` where it was undone already or a later change would
    be overwritten."""
    with catalog.session() as session:
        review = session.get(Review, review_id)
        if review is None:
            raise ReviewNotFound(f"review {review_id} does not exist")
        if review.action == "undo":
            raise ReviewError(f"{_what(review)} is an undo itself: do the action again instead")
        if review.after is None:
            raise ReviewError(f"{_what(review)} was recorded before coinlens kept what undo needs")
        group = [review]
        if review.group_id is not None:
            group = list(
                session.scalars(
                    select(Review).where(Review.group_id == review.group_id).order_by(Review.id)
                )
            )
        _check_not_undone(session, group)
        if review.action == "link":
            undo = undo_link(session, review, reviewer, comment)
            session.add(undo)
            session.flush()
            specimen_ids = [review.specimen_id, review.before["merged"]["id"]]
            restored = session.get(Specimen, review.specimen_id)
            session.refresh(restored)
        else:
            undo, specimen_ids = _undo_values(session, group, reviewer, comment)
            restored = session.get(Specimen, group[0].specimen_id)
            session.refresh(restored)
        return {
            **specimen_state(restored),
            "action": "undo",
            "review_id": undo.id,
            "undid": review.id,
            "undid_action": review.action,
            "specimen_ids": specimen_ids,
        }


def _check_not_undone(session: Session, group: list[Review]) -> None:
    undone = session.scalar(
        select(Review).where(Review.undoes_id.in_([r.id for r in group])).limit(1)
    )
    if undone is not None:
        raise ReviewConflict(
            f"{_what(group[0])} was undone already by {undone.reviewer} "
            f"({undone.at:%Y-%m-%d %H:%M})"
        )


def _undo_values(
    session: Session, group: list[Review], reviewer: str, comment: str | None
) -> tuple[Review, list[int]]:
    """Write back each review's ``before`` where its ``after`` still stands; all or nothing."""
    ids = {r.specimen_id for r in group}
    _check_not_linked_since(session, group, ids)
    specimens = {s.id: s for s in session.scalars(select(Specimen).where(Specimen.id.in_(ids)))}
    changed = [
        r
        for r in group
        if r.specimen_id not in specimens
        or any(getattr(specimens[r.specimen_id], k) != v for k, v in r.after.items())
    ]
    if changed:
        raise _later_change(session, changed, specimens)
    now = utcnow()
    first: Review | None = None
    note = (comment or "").strip()
    for review in group:
        specimen = specimens[review.specimen_id]
        values = dict(review.before or {})
        version = specimen.version
        if values and not update_if_unchanged(session, specimen, version, values):
            raise _later_change(session, [review], specimens)
        if review.action == "skip":
            session.execute(
                delete(QueueSkip).where(
                    QueueSkip.reviewer == review.reviewer,
                    QueueSkip.specimen_id == review.specimen_id,
                )
            )
        undo = Review(
            specimen_id=review.specimen_id,
            reviewer=reviewer,
            action="undo",
            from_type_id=review.to_type_id,
            to_type_id=values.get("type_id", review.to_type_id),
            comment="; ".join(
                filter(
                    None, [f"undid {review.action.replace('_', ' ')} by {review.reviewer}", note]
                )
            ),
            before=review.after,
            after=values,
            version_after=version + 1 if values else version,
            undoes_id=review.id,
            group_id=first.id if first is not None and len(group) > 1 else None,
            at=now,
        )
        session.add(undo)
        if first is None:
            session.flush()
            first = undo
            if len(group) > 1:
                undo.group_id = undo.id
    session.flush()
    return first, sorted(ids)


def _check_not_linked_since(session: Session, group: list[Review], ids: set[int]) -> None:
    """A coin linked with another since the review holds that other coin's values and trail
    too: the link is undone first, so that no undo writes over what the link brought."""
    undo = aliased(Review)
    link = session.scalar(
        select(Review)
        .where(
            Review.specimen_id.in_(ids),
            Review.action == "link",
            Review.id > min(r.id for r in group),
            ~select(undo.id).where(undo.undoes_id == Review.id).exists(),
        )
        .order_by(Review.id)
        .limit(1)
    )
    if link is not None:
        raise ReviewConflict(
            f"{_what(group[0])}: the coin was linked with {(link.after or {}).get('linked')} "
            f"since, by {link.reviewer}; undo the link first"
        )


def _later_change(
    session: Session, changed: list[Review], specimens: dict[int, Specimen]
) -> ReviewConflict:
    """The refusal of an undo that would overwrite a later change: who made it."""
    first = changed[0]
    specimen = specimens.get(first.specimen_id)
    if specimen is None:
        return ReviewConflict(f"specimen {first.specimen_id} no longer exists; nothing was undone")
    later = session.execute(
        select(Review.reviewer, Review.action)
        .where(
            Review.specimen_id.in_([r.specimen_id for r in changed]),
            Review.id > min(r.id for r in changed),
            Review.group_id.is_distinct_from(first.group_id)
            if first.group_id is not None
            else Review.id != first.id,
            Review.action != "skip",
        )
        .order_by(Review.id)
    ).all()
    names = dict.fromkeys(f"{who} ({action.replace('_', ' ')})" for who, action in later)
    who = f" by {', '.join(names)}" if names else ""
    more = f" and {len(changed) - 1} more coins" if len(changed) > 1 else ""
    return ReviewConflict(
        f"specimen {specimen.accession}{more} changed after {_what(first)}{who}; undoing it "
        "would overwrite that change: undo it first, or review the coin again"
    )


def recent_reviews(
    session: Session, reviewer: str | None = None, *, limit: int = RECENT
) -> list[dict[str, Any]]:
    """The newest review actions (of ``reviewer``, or everyone's), newest first; a bulk accept
    is one entry with its ``count``. Each says whether it was undone and can be undone."""
    query = select(Review).where(Review.group_id.is_(None) | (Review.group_id == Review.id))
    if reviewer is not None:
        query = query.where(Review.reviewer == reviewer)
    return _described(session, list(session.scalars(query.order_by(Review.id.desc()).limit(limit))))


def review_summary(session: Session, review_id: int) -> dict[str, Any] | None:
    """One review (its whole bulk accept) as ``recent_reviews`` describes it."""
    review = session.get(Review, review_id)
    if review is None:
        return None
    if review.group_id is not None and review.group_id != review.id:
        review = session.get(Review, review.group_id)
    return _described(session, [review])[0]


def _described(session: Session, heads: list[Review]) -> list[dict[str, Any]]:
    group_ids = [r.id for r in heads if r.group_id is not None]
    counts: dict[int, int] = {}
    if group_ids:
        counts = dict(
            session.execute(
                select(Review.group_id, func.count())
                .where(Review.group_id.in_(group_ids))
                .group_by(Review.group_id)
            ).all()
        )
    undone = dict(
        session.execute(
            select(Review.undoes_id, Review.reviewer).where(
                Review.undoes_id.in_([r.id for r in heads])
            )
        ).all()
    )
    accessions = dict(
        session.execute(
            select(Specimen.id, Specimen.accession).where(
                Specimen.id.in_({r.specimen_id for r in heads})
            )
        ).all()
    )
    references = type_references(
        session, {r.from_type_id for r in heads} | {r.to_type_id for r in heads}
    )
    return [
        {
            "review_id": r.id,
            "at": r.at.isoformat(),
            "reviewer": r.reviewer,
            "action": r.action,
            "specimen_id": r.specimen_id,
            "accession": accessions.get(r.specimen_id),
            "from_type": references.get(r.from_type_id),
            "to_type": references.get(r.to_type_id),
            "comment": r.comment,
            "count": counts.get(r.id, 1),
            "undone_by": undone.get(r.id),
            "undoable": r.action != "undo" and r.after is not None and r.id not in undone,
        }
        for r in heads
    ]
