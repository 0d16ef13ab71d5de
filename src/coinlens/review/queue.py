"""The review queue: backlog coins with suggestions, the least certain first.

Ordering uses the specimen's brief of its newest suggestions (kept by identify) and keyset
pagination on (score, id), so page 1,000 of 100,000 coins costs what page 1 costs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, func, select, tuple_
from sqlalchemy.orm import Session

from coinlens.catalog import DECISIONS, Image, Specimen, Suggestion, type_references

ORDERS = {"confidence": Specimen.suggestion_score, "margin": Specimen.suggestion_margin}
QUEUE_STATUSES = ("backlog", "in_review")


class QueueError(ValueError):
    """A filter or cursor that cannot be used (names it)."""


@dataclass(frozen=True)
class QueueFilter:
    """What a reviewer narrows the queue to. ``status`` in_review = flagged as new types."""

    decision: str | None = None
    type_id: int | None = None
    batch: str | None = None
    status: str = "backlog"
    order: str = "confidence"

    def __post_init__(self) -> None:
        if self.decision is not None and self.decision not in DECISIONS:
            raise QueueError(f"decision {self.decision!r}: use one of {', '.join(DECISIONS)}")
        if self.status not in QUEUE_STATUSES:
            raise QueueError(f"status {self.status!r}: use one of {', '.join(QUEUE_STATUSES)}")
        if self.order not in ORDERS:
            raise QueueError(f"order {self.order!r}: use one of {', '.join(ORDERS)}")

    def conditions(self, with_decision: bool = True) -> list[ColumnElement[bool]]:
        # identify sets decision and score together; filtering on decision lets the counts be
        # answered from the (status, batch, decision) index alone.
        where = [Specimen.status == self.status, Specimen.decision.is_not(None)]
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


def parse_cursor(cursor: str | None) -> tuple[float, int] | None:
    """``"<score>:<id>"`` of the last item seen, or None for the first page."""
    if not cursor:
        return None
    try:
        score, specimen_id = cursor.rsplit(":", 1)
        return float(score), int(specimen_id)
    except ValueError:
        raise QueueError(f"cursor {cursor!r} is not <score>:<id>") from None


def queue_page(
    session: Session, filters: QueueFilter, *, cursor: str | None = None, limit: int = 50
) -> QueuePage:
    """One page of the queue after ``cursor``, each item with its top suggestion and thumbnail."""
    key = ORDERS[filters.order]
    query = select(Specimen).where(*filters.conditions())
    after = parse_cursor(cursor)
    if after is not None:
        query = query.where(tuple_(key, Specimen.id) > tuple_(after[0], after[1]))
    specimens = session.scalars(query.order_by(key, Specimen.id).limit(limit + 1)).all()
    more = len(specimens) > limit
    specimens = specimens[:limit]
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
        }
        for s in specimens
    ]
    next_cursor = None
    if more and specimens:
        last = specimens[-1]
        next_cursor = f"{getattr(last, key.key)!r}:{last.id}"
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


def batches(session: Session, status: str = "backlog") -> list[str]:
    """The batch names of specimens waiting in the queue."""
    return list(
        session.scalars(
            select(Specimen.batch)
            .where(Specimen.status == status, Specimen.batch.is_not(None))
            .distinct()
            .order_by(Specimen.batch)
        )
    )
