"""The catalogue to browse: types with their coin counts and filters, every specimen searched and
keyset-paged, a type's reference coins with both sides, and the dashboard's figures.

Listings of specimens page by accession (unique, indexed): page 1,000 of 100,000 coins costs
what page 1 costs, as in the queue. Types are few (thousands) and page by number.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.orm import Session

from coinlens.catalog import (
    SPECIMEN_STATUSES,
    AccessionAlias,
    CoinType,
    ModelVersion,
    Review,
    Specimen,
    type_references,
)
from coinlens.identify.partial import series_name
from coinlens.review.details import _like, side_thumbnails, type_dict

TYPE_SORTS = ("reference", "catalogued", "waiting", "flagged", "date")
TYPE_FACETS = ("authority", "mint", "denomination", "material")
TYPE_PAGE = 100


class BrowseError(ValueError):
    """A filter, sort or cursor that cannot be used (names it)."""


@dataclass(frozen=True)
class TypeFilter:
    """What the types list is narrowed to: ``q`` text in the reference, descriptors or
    description; ``series`` a corpus and volume ("RIC VIII"); the facets matched exactly;
    ``year_from``/``year_to`` the years a type's dates overlap (negative: BC)."""

    q: str = ""
    series: str = ""
    authority: str = ""
    mint: str = ""
    denomination: str = ""
    material: str = ""
    year_from: int | None = None
    year_to: int | None = None
    sort: str = "reference"

    def __post_init__(self) -> None:
        if self.sort not in TYPE_SORTS:
            raise BrowseError(f"sort {self.sort!r}: use one of {', '.join(TYPE_SORTS)}")


def _coins_of(column: Any, status: str) -> Any:
    """How many coins of ``status`` name the type of the row in ``column``: one seek of the
    (type, status) index per type, whatever the other coins."""
    return (
        select(func.count())
        .where(column == CoinType.id, Specimen.status == status)
        .correlate(CoinType)
        .scalar_subquery()
    )


def list_types(session: Session, filters: TypeFilter, page: int = 1) -> dict[str, Any]:
    """One page of types under ``filters``, each with how many coins are catalogued as it, wait
    in the backlog with it as their top suggestion, and are flagged with it as top suggestion;
    with the total and the values each facet can take."""
    counts = {
        "catalogued": _coins_of(Specimen.type_id, "catalogued"),
        "waiting": _coins_of(Specimen.suggested_type_id, "backlog"),
        "flagged": _coins_of(Specimen.suggested_type_id, "in_review"),
    }
    where = _type_conditions(filters)
    base: Select = select(CoinType, *(c.label(name) for name, c in counts.items())).where(*where)
    order = {
        "reference": [CoinType.reference],
        "date": [CoinType.date_from.is_(None), CoinType.date_from, CoinType.reference],
    }.get(filters.sort) or [counts[filters.sort].desc(), CoinType.reference]
    total = session.scalar(select(func.count()).select_from(CoinType).where(*where)) or 0
    page = max(1, page)
    rows = session.execute(
        base.order_by(*order).offset((page - 1) * TYPE_PAGE).limit(TYPE_PAGE)
    ).all()
    items = [
        {
            **type_dict(row[0]),
            "series": series_name(row[0].reference),
            "catalogued": row.catalogued,
            "waiting": row.waiting,
            "flagged": row.flagged,
        }
        for row in rows
    ]
    return {
        "items": items,
        "total": total,
        "page": page,
        "pages": max(1, -(-total // TYPE_PAGE)),
        "facets": type_facets(session),
    }


def _type_conditions(filters: TypeFilter) -> list[Any]:
    where: list[Any] = []
    text = filters.q.strip()
    if text:
        pattern = _like(text)
        where.append(
            or_(
                *(
                    column.ilike(pattern, escape="\\")
                    for column in (
                        CoinType.reference,
                        CoinType.authority,
                        CoinType.mint,
                        CoinType.denomination,
                        CoinType.material,
                        CoinType.description,
                    )
                )
            )
        )
    if filters.series.strip():
        series = filters.series.strip()
        escaped = series.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        # "RIC VIII 12", "RPC I, 65", "RRC 535/1": the series, then a space or a comma
        where.append(
            or_(
                CoinType.reference.like(f"{escaped} %", escape="\\"),
                CoinType.reference.like(f"{escaped},%", escape="\\"),
            )
        )
    for facet in TYPE_FACETS:
        value = getattr(filters, facet).strip()
        if value:
            where.append(getattr(CoinType, facet) == value)
    if filters.year_from is not None:
        where.append(func.coalesce(CoinType.date_to, CoinType.date_from) >= filters.year_from)
    if filters.year_to is not None:
        where.append(func.coalesce(CoinType.date_from, CoinType.date_to) <= filters.year_to)
    return where


def type_facets(session: Session) -> dict[str, list[str]]:
    """The values each filter of the types list can take: series read from the references, and
    the authorities, mints, denominations and materials recorded."""
    out: dict[str, list[str]] = {}
    references = session.scalars(select(CoinType.reference)).all()
    out["series"] = sorted({s for s in map(series_name, references) if s})
    for facet in TYPE_FACETS:
        column = getattr(CoinType, facet)
        out[facet] = list(
            session.scalars(select(column).where(column.is_not(None)).distinct().order_by(column))
        )
    return out


@dataclass(frozen=True)
class SpecimenFilter:
    """What the specimens list is narrowed to: ``q`` text in the accession, an alias, the type's
    reference (catalogued or suggested) or the note; a status, a batch, a type."""

    q: str = ""
    status: str = ""
    batch: str = ""
    type_id: int | None = None

    def __post_init__(self) -> None:
        if self.status and self.status not in SPECIMEN_STATUSES:
            raise BrowseError(f"status {self.status!r}: use one of {', '.join(SPECIMEN_STATUSES)}")


def list_specimens(
    session: Session, filters: SpecimenFilter, *, after: str | None = None, limit: int = 50
) -> dict[str, Any]:
    """One page of specimens by accession after ``after`` (the last accession seen), each with
    a thumbnail per side, its status, type (or top suggestion), batch and measures; with
    ``next`` (the cursor of the following page, None on the last)."""
    query = select(Specimen).where(*_specimen_conditions(filters))
    if after:
        query = query.where(Specimen.accession > after)
    rows = session.scalars(query.order_by(Specimen.accession).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    ids = [s.id for s in rows]
    references = type_references(
        session, {t for s in rows for t in (s.type_id, s.suggested_type_id) if t is not None}
    )
    sides = side_thumbnails(session, ids)
    items = [
        {
            "id": s.id,
            "accession": s.accession,
            "status": s.status,
            "batch": s.batch,
            "type_id": s.type_id,
            "type": references.get(s.type_id),
            "suggested_type_id": s.suggested_type_id,
            "suggested_type": references.get(s.suggested_type_id),
            "decision": s.decision,
            "score": s.suggestion_score,
            "weight_g": s.weight_g,
            "diameter_mm": s.diameter_mm,
            "die_axis": s.die_axis,
            "sides": sides.get(s.id, []),
        }
        for s in rows
    ]
    return {"items": items, "next": rows[-1].accession if more and rows else None}


def _specimen_conditions(filters: SpecimenFilter) -> list[Any]:
    where: list[Any] = []
    if filters.status:
        where.append(Specimen.status == filters.status)
    if filters.batch:
        where.append(Specimen.batch == filters.batch)
    if filters.type_id is not None:
        where.append(Specimen.type_id == filters.type_id)
    text = filters.q.strip()
    if text:
        pattern = _like(text)
        typed = select(CoinType.id).where(CoinType.reference.ilike(pattern, escape="\\"))
        alias = (
            select(AccessionAlias.id)
            .where(
                AccessionAlias.specimen_id == Specimen.id,
                AccessionAlias.alias.ilike(pattern, escape="\\"),
            )
            .exists()
        )
        where.append(
            or_(
                Specimen.accession.ilike(pattern, escape="\\"),
                alias,
                Specimen.type_id.in_(typed),
                and_(Specimen.status != "catalogued", Specimen.suggested_type_id.in_(typed)),
                Specimen.notes.ilike(pattern, escape="\\"),
            )
        )
    return where


# the dashboard --------------------------------------------------------------------------------


def batch_progress(session: Session) -> list[dict[str, Any]]:
    """Per batch: coins catalogued, waiting with an auto-accept suggestion, waiting for review
    (review, possible new type, or not matched yet) and flagged as possible new types."""
    rows = session.execute(
        select(Specimen.batch, Specimen.status, Specimen.decision, func.count()).group_by(
            Specimen.batch, Specimen.status, Specimen.decision
        )
    ).all()
    batches: dict[str, dict[str, Any]] = {}
    for batch, status, decision, count in rows:
        name = batch or "(no batch)"
        entry = batches.setdefault(
            name,
            {"batch": name, "catalogued": 0, "auto_accept": 0, "review": 0, "flagged": 0},
        )
        if status == "catalogued":
            entry["catalogued"] += count
        elif status == "in_review":
            entry["flagged"] += count
        elif decision == "auto_accept":
            entry["auto_accept"] += count
        else:
            entry["review"] += count
    for entry in batches.values():
        entry["total"] = sum(entry[k] for k in ("catalogued", "auto_accept", "review", "flagged"))
    return sorted(batches.values(), key=lambda e: (e["batch"] == "(no batch)", e["batch"]))


def reviews_per_day(session: Session, days: int = 14) -> dict[str, Any]:
    """Reviews per reviewer per day over the last ``days`` days (undos not counted), newest day
    first."""
    since = datetime.now(UTC) - timedelta(days=days - 1)
    start = since.replace(hour=0, minute=0, second=0, microsecond=0)
    day = func.date(Review.at)
    rows = session.execute(
        select(Review.reviewer, day, func.count())
        .where(Review.at >= start.replace(tzinfo=None), Review.action != "undo")
        .group_by(Review.reviewer, day)
    ).all()
    dates = [(start + timedelta(days=n)).date().isoformat() for n in range(days)][::-1]
    counts: dict[str, dict[str, int]] = defaultdict(dict)
    for reviewer, on, count in rows:
        counts[reviewer][str(on)[:10]] = count
    reviewers = [
        {"reviewer": name, "days": [per.get(d, 0) for d in dates], "total": sum(per.values())}
        for name, per in sorted(counts.items())
    ]
    return {"dates": dates, "reviewers": reviewers}


def current_model(session: Session) -> dict[str, Any] | None:
    """The newest model version: when, what it was trained on, and how it did on held-out coins
    (its calibration's top-1, and the share auto-accepted at the target precision)."""
    version = session.scalar(select(ModelVersion).order_by(ModelVersion.id.desc()))
    if version is None:
        return None
    snapshot = version.training_snapshot or {}
    metrics = version.metrics or {}
    calibration = metrics.get("calibration") or {}
    validation = metrics.get("validation") or {}
    catalogued = session.execute(
        select(func.count(), func.count(func.distinct(Specimen.type_id))).where(
            Specimen.status == "catalogued"
        )
    ).one()
    return {
        "id": version.id,
        "backbone": version.backbone,
        "kind": snapshot.get("kind", "trained"),
        "created_at": version.created_at.isoformat(timespec="minutes"),
        "trained_images": snapshot.get("images"),
        "trained_types": snapshot.get("types"),
        "heldout": calibration.get("n_heldout"),
        "top1": calibration.get("heldout_top1", validation.get("top1")),
        "top5": validation.get("top5"),
        "coverage": calibration.get("heldout_coverage_at_threshold"),
        "precision": calibration.get("heldout_precision_at_threshold"),
        "target_precision": calibration.get("target_precision"),
        "method": validation.get("method"),
        "catalogued_coins": catalogued[0],
        "catalogued_types": catalogued[1],
    }
