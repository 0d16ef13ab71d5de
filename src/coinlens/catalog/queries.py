"""Read-only questions about the catalogue that several commands ask."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from coinlens.catalog.models import (
    SPECIMEN_STATUSES,
    AccessionAlias,
    CoinType,
    Image,
    ModelVersion,
    Specimen,
)


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
