"""Read-only questions about the catalogue that several commands ask."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from coinlens.catalog.models import SPECIMEN_STATUSES, CoinType, Image, ModelVersion, Specimen


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
