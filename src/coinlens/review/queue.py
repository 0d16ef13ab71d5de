"""The review queue: backlog coins with suggestions, the least certain first.

Ordering uses the specimen's brief of its newest suggestions (kept by identify) and keyset
pagination on (score, id), so page 1,000 of 100,000 coins costs what page 1 costs. The coins a
reviewer skipped come after all the others, for that reviewer (``QueueFilter.reviewer``): the
cursor says which of the two parts it is in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, func, select, tuple_
from sqlalchemy.orm import Session

from coinlens.catalog import DECISIONS, Image, QueueSkip, Specimen, Suggestion, type_references

ORDERS = {"confidence": Specimen.suggestion_score, "margin": Specimen.suggestion_margin}
QUEUE_STATUSES = ("backlog", "in_review")
SKIPPED = "~"  # a cursor in the skipped part of the queue starts with it


class QueueError(ValueError):
    """A filter or cursor that cannot be used (names it)."""


@dataclass(frozen=True)
class QueueFilter:
    """What a reviewer narrows the queue to. ``status`` in_review = flagged as new types;
    ``reviewer``: whose skipped coins go last (None: nobody's)."""

    decision: str | None = None
    type_id: int | None = None
    batch: str | None = None
    status: str = "backlog"
    order: str = "confidence"
    reviewer: str | None = None

    def __post_init__(self) -> None:
        if self.decision is not None and self.decision not in DECISIONS:
            raise QueueError(f"decision {self.decision!r}: use one of {', '.join(DECISIONS)}")
        if self.status not in QUEUE_STATUSES:
            raise QueueError(f"status {self.status!r}: use one of {', '.join(QUEUE_STATUSES)}")
        if self.order not in ORDERS:
            raise QueueError(f"order {self.order!r}: use one of {', '.join(ORDERS)}")

    @property
    def key(self) -> ColumnElement[Any]:
        """The order's column. A flagged coin may have no suggestion (flagged before identify,
        or its sides linked since): it sorts first, so that no flagged coin is out of sight."""
        column = ORDERS[self.order]
        return func.coalesce(column, -1.0) if self.status == "in_review" else column

    def conditions(self, with_decision: bool = True) -> list[ColumnElement[bool]]:
        # identify sets decision and score together; filtering on decision lets the counts be
        # answered from the (status, batch, decision) index alone. Every flagged coin is listed.
        where = [Specimen.status == self.status]
        if self.status == "backlog":
            where.append(Specimen.decision.is_not(None))
        if with_decision and self.decision:
            where.append(Specimen.decision == self.decision)
        if self.type_id is not None:
            where.append(Specimen.suggested_type_id == self.type_id)
        if self.batch:
            where.append(Specimen.batch == self.batch)
        return where


@dataclass
class QueuePage:
    items: list[dict[str, Any]] = field(default_factory=list)
    next_cursor: str | None = None


def parse_cursor(cursor: str | None) -> tuple[bool, float, int] | None:
    """``"<score>:<id>"`` of the last item seen (``"~<score>:<id>"`` among the reviewer's
    skipped coins) as (skipped, score, id), or None for the first page."""
    if not cursor:
        return None
    try:
        skipped = cursor.startswith(SKIPPED)
        score, specimen_id = cursor.removeprefix(SKIPPED).rsplit(":", 1)
        return skipped, float(score), int(specimen_id)
    except ValueError:
        raise QueueError(f"cursor {cursor!r} is not <score>:<id>") from None


def _skipped_by(reviewer: str) -> ColumnElement[bool]:
    return (
        select(QueueSkip.id)
        .where(QueueSkip.specimen_id == Specimen.id, QueueSkip.reviewer == reviewer)
        .exists()
    )


def cursor_of(session: Session, filters: QueueFilter, specimen_id: int) -> str | None:
    """The cursor that points just at ``specimen_id`` (the next page starts after it), where it
    is a coin of the queue under ``filters``; None elsewhere."""
    row = session.execute(
        select(filters.key, Specimen.id).where(*filters.conditions(), Specimen.id == specimen_id)
    ).first()
    if row is None:
        return None
    skipped = filters.reviewer is not None and bool(
        session.scalar(select(_skipped_by(filters.reviewer).where(Specimen.id == specimen_id)))
    )
    return f"{SKIPPED if skipped else ''}{row[0]!r}:{row[1]}"


def queue_page(
    session: Session, filters: QueueFilter, *, cursor: str | None = None, limit: int = 50
) -> QueuePage:
    """One page of the queue after ``cursor``, each item with its top suggestion and thumbnail."""
    key = filters.key
    after = parse_cursor(cursor)
    parts = [False, True] if filters.reviewer is not None else [False]
    if after is not None and after[0]:
        parts = [True]
    rows: list[tuple[bool, Any]] = []
    for skipped in parts:
        query = select(Specimen, key).where(*filters.conditions())
        if filters.reviewer is not None:
            skip = _skipped_by(filters.reviewer)
            query = query.where(skip if skipped else ~skip)
        if after is not None and after[0] == skipped:
            query = query.where(tuple_(key, Specimen.id) > tuple_(after[1], after[2]))
        found = session.execute(query.order_by(key, Specimen.id).limit(limit + 1 - len(rows))).all()
        rows += [(skipped, row) for row in found]
        if len(rows) > limit:
            break
    more = len(rows) > limit
    rows = rows[:limit]
    specimens = [row[0] for _, row in rows]
    skipped_ids = {row[0].id for skipped, row in rows if skipped}
    ids = [s.id for s in specimens]
    type_ids = {s.suggested_type_id for s in specimens if s.suggested_type_id is not None}
    references = type_references(session, type_ids)
    thumbnails: dict[int, str] = {}
    for specimen_id, thumbnail in session.execute(
        select(Image.specimen_id, Image.thumbnail_key)
        .where(Image.specimen_id.in_(ids))
        .order_by(Image.id)
    ):
        thumbnails.setdefault(specimen_id, thumbnail)
    reasons: dict[int, str | None] = {}  # why the decision, kept with the newest top suggestion
    for specimen_id, evidence in session.execute(
        select(Suggestion.specimen_id, Suggestion.evidence)
        .where(Suggestion.specimen_id.in_(ids), Suggestion.rank == 1)
        .order_by(Suggestion.model_version_id.desc())
    ):
        reasons.setdefault(specimen_id, (evidence or {}).get("reason"))
    items = [
        {
            "id": s.id,
            "accession": s.accession,
            "batch": s.batch,
            "status": s.status,
            "decision": s.decision,
            "decision_reason": reasons.get(s.id),
            "suggested_type_id": s.suggested_type_id,
            "suggested_type": references.get(s.suggested_type_id),
            "score": s.suggestion_score,
            "margin": s.suggestion_margin,
            "thumbnail_key": thumbnails.get(s.id),
            "version": s.version,
            "skipped": s.id in skipped_ids,
        }
        for s in specimens
    ]
    next_cursor = None
    if more and rows:
        skipped, (last, score) = rows[-1]
        next_cursor = f"{SKIPPED if skipped else ''}{score!r}:{last.id}"
    return QueuePage(items, next_cursor)


def queue_counts(session: Session, filters: QueueFilter) -> dict[str, int]:
    """How many coins the queue holds under ``filters``, in all and per decision."""
    rows = session.execute(
        select(Specimen.decision, func.count())
        .where(*filters.conditions(with_decision=False))
        .group_by(Specimen.decision)
    ).all()
    counts = {decision: 0 for decision in DECISIONS}
    counts.update({decision: count for decision, count in rows if decision})
    counts["total"] = sum(count for _, count in rows)
    return counts


def batches(session: Session, status: str | None = "backlog") -> list[str]:
    """The batch names of specimens of ``status`` (waiting in the queue by default; None: of
    every specimen)."""
    where = [Specimen.batch.is_not(None)]
    if status is not None:
        where.append(Specimen.status == status)
    return list(
        session.scalars(select(Specimen.batch).where(*where).distinct().order_by(Specimen.batch))
    )
