"""Read-only questions about the catalogue that several commands ask."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session, aliased

from coinlens.catalog.models import (
    SPECIMEN_STATUSES,
    AccessionAlias,
    AuditSample,
    CoinType,
    Image,
    ModelVersion,
    Review,
    Specimen,
)

# Reviews in which a person chose a coin's type (a bulk accept chose nothing: it took the model's)
CHOSEN_BY_A_PERSON = ("accept", "correct", "new_type", "reattribute")


def standing_reviews(session: Session, specimen_ids: Sequence[int], actions: Sequence[str]):
    """Reviews of ``specimen_ids`` with one of ``actions`` that no undo reversed, oldest first."""
    undo = aliased(Review)
    undone = select(undo.id).where(undo.undoes_id == Review.id).exists()
    return session.scalars(
        select(Review)
        .where(Review.specimen_id.in_(list(specimen_ids)), Review.action.in_(actions), ~undone)
        .order_by(Review.id)
    ).all()


def reviewed_in_batch(session: Session, batch: str) -> dict[int, int]:
    """{specimen id: type id} of the batch's coins catalogued by a person's review that stands
    (an audit, the queue; not a bulk accept): what the batch's calibration learns from."""
    rows = session.execute(
        select(Specimen.id, Specimen.type_id).where(
            Specimen.batch == batch,
            Specimen.status == "catalogued",
            Specimen.type_id.is_not(None),
        )
    ).all()
    types = dict(rows)
    chosen: set[int] = set()
    ids = list(types)
    for start in range(0, len(ids), 500):
        reviews = standing_reviews(session, ids[start : start + 500], CHOSEN_BY_A_PERSON)
        chosen.update(r.specimen_id for r in reviews)
    return {specimen_id: types[specimen_id] for specimen_id in ids if specimen_id in chosen}


@dataclass(frozen=True)
class AuditOutcome:
    """One coin of an audit: drawn when and by whom, held by whom, and its outcome (``right``
    None until a person's review of it stands)."""

    specimen_id: int
    suggested_type_id: int | None
    drawn_by: str
    drawn_at: datetime
    claimed_by: str | None
    claimed_at: datetime | None
    purpose: str = "bound"
    reviewer: str | None = None
    reviewed_at: datetime | None = None
    review_id: int | None = None
    right: bool | None = None


def audit_outcomes(session: Session, batch: str) -> list[AuditOutcome]:
    """Every coin drawn into ``batch``'s audit, in the order drawn, with the first review that
    stands of those a person made since it was drawn: right where it kept the suggested type."""
    samples = session.scalars(
        select(AuditSample).where(AuditSample.batch == batch).order_by(AuditSample.id)
    ).all()
    first: dict[int, Review] = {}
    drawn = {s.specimen_id: s.drawn_at for s in samples}
    ids = list(drawn)
    for start in range(0, len(ids), 500):
        for review in standing_reviews(session, ids[start : start + 500], CHOSEN_BY_A_PERSON):
            at, since = _aware(review.at), _aware(drawn[review.specimen_id])
            if review.specimen_id not in first and at >= since:
                first[review.specimen_id] = review
    outcomes = []
    for s in samples:
        review = first.get(s.specimen_id)
        outcomes.append(
            AuditOutcome(
                s.specimen_id,
                s.suggested_type_id,
                s.drawn_by,
                s.drawn_at,
                s.claimed_by,
                s.claimed_at,
                s.purpose,
                review.reviewer if review else None,
                review.at if review else None,
                review.id if review else None,
                (review.to_type_id == s.suggested_type_id) if review else None,
            )
        )
    return outcomes


def _aware(moment: datetime) -> datetime:
    """SQLite gives naive datetimes back: they are UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def catalog_counts(session: Session) -> dict[str, Any]:
    """Counts in the shape of ``coinlens status --json`` (DESIGN.md)."""
    by_status = dict(
        session.execute(select(Specimen.status, func.count()).group_by(Specimen.status)).all()
    )
    return {
        "types": session.scalar(select(func.count()).select_from(CoinType)) or 0,
        "specimens": {status: by_status.get(status, 0) for status in SPECIMEN_STATUSES},
        "images": session.scalar(select(func.count()).select_from(Image)) or 0,
        "models": session.scalar(select(func.count()).select_from(ModelVersion)) or 0,
    }


def specimens_per_type(session: Session) -> list[tuple[str, int]]:
    """(type reference, catalogued specimens) for every type, most specimens first."""
    rows = session.execute(
        select(CoinType.reference, func.count(Specimen.id))
        .outerjoin(Specimen, Specimen.type_id == CoinType.id)
        .group_by(CoinType.reference)
        .order_by(func.count(Specimen.id).desc(), CoinType.reference)
    ).all()
    return [(reference, count) for reference, count in rows]


def type_references(
    session: Session, type_ids: Iterable[int | None] | None = None
) -> dict[int, str]:
    """{type id: reference} for the given ids (None and unknown ids are left out), or for every
    type when ``type_ids`` is None."""
    statement = select(CoinType.id, CoinType.reference)
    if type_ids is not None:
        ids = sorted({i for i in type_ids if i is not None})
        if not ids:
            return {}
        statement = statement.where(CoinType.id.in_(ids))
    return {type_id: reference for type_id, reference in session.execute(statement)}


def newest_trained_version(session: Session) -> ModelVersion | None:
    """The model identify uses: the newest version with saved weights (None before training)."""
    return session.scalar(
        select(ModelVersion)
        .where(ModelVersion.artefacts.is_not(None))
        .order_by(ModelVersion.id.desc())
    )


def _named(column: InstrumentedAttribute[str], accessions: Sequence[str]) -> ColumnElement[bool]:
    """The accession is one of these, or a tray coin of one (``<photo's accession>#NN``)."""
    return or_(
        column.in_(accessions),
        *[column.startswith(f"{a}#", autoescape=True) for a in accessions],
    )


def specimens_by_accession(session: Session, accessions: Sequence[str]) -> list[tuple[str, int]]:
    """(accession, specimen id) of what ingest recorded under these accessions: the specimens,
    their tray coins, and those merged into another specimen as its other side (by their alias:
    the id is the specimen they joined)."""
    if not accessions:
        return []
    own = session.execute(
        select(Specimen.accession, Specimen.id).where(_named(Specimen.accession, accessions))
    ).all()
    merged = session.execute(
        select(AccessionAlias.alias, AccessionAlias.specimen_id).where(
            _named(AccessionAlias.alias, accessions)
        )
    ).all()
    return [(accession, specimen_id) for accession, specimen_id in [*own, *merged]]


def specimen_by_accession(session: Session, accession: str) -> Specimen | None:
    """The specimen recorded under ``accession``, or the one it was merged into (an alias)."""
    specimen = session.scalar(select(Specimen).where(Specimen.accession == accession))
    if specimen is not None:
        return specimen
    return session.scalar(
        select(Specimen)
        .join(AccessionAlias, AccessionAlias.specimen_id == Specimen.id)
        .where(AccessionAlias.alias == accession)
    )
