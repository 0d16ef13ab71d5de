"""What a reviewer looks at: a specimen with its sides, suggestions and their reference coins,
and the types to choose from."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from coinlens.catalog import (
    TYPE_DESCRIPTORS,
    AccessionAlias,
    CoinType,
    Image,
    Specimen,
    Suggestion,
    newest_trained_version,
    split_notes,
)
from coinlens.identify.partial import suggest_levels
from coinlens.identify.scoring import Calibration
from coinlens.review.actions import history
from coinlens.review.queue import QueueFilter, queue_counts
from coinlens.review.records import type_history

TYPE_FIELDS = ("reference", "uri", *TYPE_DESCRIPTORS, "description")


def type_dict(coin_type: CoinType, specimens: int | None = None) -> dict[str, Any]:
    out = {"id": coin_type.id, **{name: getattr(coin_type, name) for name in TYPE_FIELDS}}
    if specimens is not None:
        out["catalogued_specimens"] = specimens
    return out


def image_dict(image: Image) -> dict[str, Any]:
    crop = image.crop or {}
    return {
        "id": image.id,
        "side": image.side,
        "key": image.key,
        "crop_key": crop.get("key") or image.key,
        "thumbnail_key": image.thumbnail_key,
        "width": image.width,
        "height": image.height,
        "source": image.source,
        "box": {k: crop[k] for k in ("x", "y", "w", "h") if k in crop} or None,
        "layout": crop.get("layout"),
    }


# Photos a browser draws; a tray shot as HEIC or TIFF is shown as its coins' boxes alone.
BROWSER_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp")


def coins_in_photo(session: Session, image: Image) -> dict[str, Any] | None:
    """Every coin cut from the same photo as ``image`` (a tray's coins, a picture's two sides),
    each with its box: a reviewer sees where this coin lies among its neighbours, which carry
    the same light and scale, and steps to them. None for a photo of one coin."""
    if (image.crop or {}).get("layout") not in ("tray", "pair"):
        return None
    rows = session.execute(
        select(
            Image.id,
            Image.specimen_id,
            Image.side,
            Image.crop,
            Specimen.accession,
            Specimen.status,
            Specimen.decision,
        )
        .join(Specimen, Specimen.id == Image.specimen_id)
        .where(Image.sha256 == image.sha256)
        .order_by(Specimen.accession, Image.id)
    ).all()
    coins = [
        {
            "specimen_id": row.specimen_id,
            "accession": row.accession,
            "side": row.side,
            # what is left to do on the tray at a glance: catalogued, or identify's decision
            "state": "catalogued" if row.status == "catalogued" else row.decision or row.status,
            "box": {k: row.crop[k] for k in ("x", "y", "w", "h")},
            "current": row.id == image.id,
        }
        for row in rows
        if row.crop and all(k in row.crop for k in ("x", "y", "w", "h"))
    ]
    return {"viewable": image.key.lower().endswith(BROWSER_SUFFIXES), "coins": coins}


def specimen_summary(specimen: Specimen) -> dict[str, Any]:
    """A specimen's record: ``notes`` is the curator's note, ``recorded`` what an import kept
    that has no field of its own (a manifest's other columns, a backlog folder's label)."""
    note, recorded = split_notes(specimen.notes)
    return {
        "id": specimen.id,
        "accession": specimen.accession,
        "status": specimen.status,
        "type_id": specimen.type_id,
        "batch": specimen.batch,
        "weight_g": specimen.weight_g,
        "diameter_mm": specimen.diameter_mm,
        "die_axis": specimen.die_axis,
        "notes": note,
        "recorded": recorded,
        "attribution": specimen.attribution,
        "decision": specimen.decision,
        "suggested_type_id": specimen.suggested_type_id,
        "score": specimen.suggestion_score,
        "margin": specimen.suggestion_margin,
        "version": specimen.version,
    }


def side_candidates(session: Session, specimen: Specimen, around: int = 3) -> list[str]:
    """Accessions a reviewer may link as this coin's other side: the nearest before and after it
    in its batch (a coin's two photos are mostly taken one after the other), each with photos of
    one side only. Empty where this coin shows both sides already."""
    if any(i.side == "both" for i in specimen.images) or {"obverse", "reverse"} <= {
        i.side for i in specimen.images
    }:
        return []

    def shows(side: str):
        return select(Image.id).where(Image.specimen_id == Specimen.id, Image.side == side).exists()

    one_sided = ~shows("both") & ~(shows("obverse") & shows("reverse"))
    same_batch = Specimen.batch == specimen.batch if specimen.batch else Specimen.batch.is_(None)
    found: list[str] = []
    for before in (True, False):
        order = Specimen.accession.desc() if before else Specimen.accession
        near = (
            Specimen.accession < specimen.accession
            if before
            else (Specimen.accession > specimen.accession)
        )
        found += session.scalars(
            select(Specimen.accession)
            .where(same_batch, near, one_sided, Specimen.id != specimen.id)
            .order_by(order)
            .limit(around)
        ).all()
    return sorted(found)


def specimen_detail(session: Session, specimen_id: int) -> dict[str, Any] | None:
    """The specimen, its images, its newest suggestions with their evidence images, its trail."""
    specimen = session.get(Specimen, specimen_id)
    if specimen is None:
        return None
    newest = session.scalar(
        select(func.max(Suggestion.model_version_id)).where(Suggestion.specimen_id == specimen_id)
    )
    suggestions = session.scalars(
        select(Suggestion)
        .where(Suggestion.specimen_id == specimen_id, Suggestion.model_version_id == newest)
        .order_by(Suggestion.rank)
    ).all()
    type_ids = {s.type_id for s in suggestions} | {specimen.type_id}
    types = {
        t.id: t for t in session.scalars(select(CoinType).where(CoinType.id.in_(type_ids - {None})))
    }
    evidence_ids = {i for s in suggestions for i in (s.evidence or {}).get("images", [])}
    evidence = {
        image.id: image
        for image in session.scalars(select(Image).where(Image.id.in_(evidence_ids)))
    }
    accessions = dict(
        session.execute(
            select(Specimen.id, Specimen.accession).where(
                Specimen.id.in_({image.specimen_id for image in evidence.values()})
            )
        ).all()
    )
    out = specimen_summary(specimen)
    out["type"] = type_dict(types[specimen.type_id]) if specimen.type_id in types else None
    out["images"] = [
        {**image_dict(image), "in_photo": coins_in_photo(session, image)}
        for image in specimen.images
    ]
    # accessions of specimens merged into this one as its other side (``link_sides``)
    out["aliases"] = session.scalars(
        select(AccessionAlias.alias)
        .where(AccessionAlias.specimen_id == specimen_id)
        .order_by(AccessionAlias.id)
    ).all()
    out["side_candidates"] = side_candidates(session, specimen)
    out["model_version"] = newest
    out["suggestions"] = [
        {
            "rank": s.rank,
            "type_id": s.type_id,
            "type": types[s.type_id].reference if s.type_id in types else None,
            "score": s.score,
            "similarity": (s.evidence or {}).get("similarity"),
            "decision": s.decision,
            # up to 8 coins of the type, both sides: the ones that matched first
            "references": reference_coins(
                session,
                s.type_id,
                [
                    evidence[i].specimen_id
                    for i in (s.evidence or {}).get("images", [])
                    if i in evidence
                ],
            ),
            "evidence": [
                {
                    **image_dict(evidence[i]),
                    "specimen_id": evidence[i].specimen_id,
                    "accession": accessions.get(evidence[i].specimen_id),
                }
                for i in (s.evidence or {}).get("images", [])
                if i in evidence
            ],
        }
        for s in suggestions
    ]
    # the coarser levels the suggestions agree on, for a coin whose exact type is uncertain
    out["partial_attribution"] = suggest_levels(
        (type_dict(types[s.type_id]), s.score) for s in suggestions if s.type_id in types
    )
    # why the decision (``scoring.explain``), kept with the top suggestion when it was made
    out["decision_reason"] = (suggestions[0].evidence or {}).get("reason") if suggestions else None
    out["history"] = history(session, specimen_id)
    return out


def _like(text: str) -> str:
    """A LIKE pattern matching ``text`` literally (its % and _ escaped)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def search_types(session: Session, query: str = "", *, limit: int = 20) -> list[dict[str, Any]]:
    """Types whose reference (or denomination, authority, mint) contains ``query``: the exact
    reference first, then references starting with it, then the rest."""
    statement = select(CoinType)
    text = query.strip()
    if text:
        pattern = _like(text)
        statement = statement.where(
            or_(
                CoinType.reference.ilike(pattern, escape="\\"),
                CoinType.denomination.ilike(pattern, escape="\\"),
                CoinType.authority.ilike(pattern, escape="\\"),
                CoinType.mint.ilike(pattern, escape="\\"),
            )
        )
    rows = session.scalars(statement.order_by(CoinType.reference).limit(max(limit * 5, 50))).all()
    lowered = text.lower()
    rows = sorted(
        rows,
        key=lambda t: (
            t.reference.lower() != lowered,
            not t.reference.lower().startswith(lowered),
            t.reference,
        ),
    )
    return [type_dict(t) for t in rows[:limit]]


def type_detail(session: Session, type_id: int) -> dict[str, Any] | None:
    coin_type = session.get(CoinType, type_id)
    if coin_type is None:
        return None
    count = session.scalar(
        select(func.count())
        .select_from(Specimen)
        .where(Specimen.type_id == type_id, Specimen.status == "catalogued")
    )
    out = type_dict(coin_type, count)
    examples = session.execute(
        select(Image.thumbnail_key, Specimen.id, Specimen.accession)
        .join(Specimen, Image.specimen_id == Specimen.id)
        .where(Specimen.type_id == type_id, Specimen.status == "catalogued")
        .order_by(Image.id)
        .limit(12)
    ).all()
    out["examples"] = [
        {"thumbnail_key": key, "specimen_id": sid, "accession": acc} for key, sid, acc in examples
    ]
    # the backlog coins waiting with this type as their top suggestion, per decision
    out["suggested_in_backlog"] = queue_counts(session, QueueFilter(type_id=type_id))
    out["auto_accept_floor"] = auto_accept_floor(session, type_id)
    out["version"] = coin_type.version
    out["history"] = type_history(session, type_id)
    return out


def auto_accept_floor(session: Session, type_id: int) -> dict[str, Any] | None:
    """The similarity a coin suggested as this type needs to be auto-accepted, where the current
    model's calibration raised it above the common one (``Calibration.type_floors``: coins of
    types the catalogue lacks were drawn to this type); None elsewhere."""
    version = newest_trained_version(session)
    if version is None:
        return None
    calibration = Calibration.from_dict((version.metrics or {}).get("calibration"))
    if type_id not in calibration.type_floors:
        return None
    return {
        "similarity": round(calibration.floor(type_id), 3),
        "common": round(calibration.familiar_similarity, 3),
        "model_version": version.id,
    }


def type_by_reference(session: Session, reference: str) -> CoinType | None:
    return session.scalar(select(CoinType).where(CoinType.reference == reference.strip()))


def side_thumbnails(session: Session, specimen_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    """Each specimen's first image of every side it shows (obverse first), for lists."""
    order = {"obverse": 0, "both": 1, "reverse": 2, "unknown": 3}
    found: dict[int, dict[str, dict[str, Any]]] = defaultdict(dict)
    for row in session.execute(
        select(Image.id, Image.specimen_id, Image.side, Image.thumbnail_key, Image.crop, Image.key)
        .where(Image.specimen_id.in_(specimen_ids))
        .order_by(Image.id)
    ):
        crop = (row.crop or {}).get("key") or row.key
        found[row.specimen_id].setdefault(
            row.side,
            {
                "image_id": row.id,
                "side": row.side,
                "thumbnail_key": row.thumbnail_key,
                "crop_key": crop,
            },
        )
    return {
        sid: sorted(sides.values(), key=lambda i: order.get(i["side"], 9))
        for sid, sides in found.items()
    }


def reference_coins(
    session: Session, type_id: int, first: list[int] | None = None, limit: int = 8
) -> list[dict[str, Any]]:
    """Up to ``limit`` catalogued coins of a type, each with every side it shows: the coins in
    ``first`` (a suggestion's evidence) first, in that order, then the others by accession."""
    first = list(dict.fromkeys(first or []))
    chosen = list(
        session.scalars(
            select(Specimen.id).where(
                Specimen.id.in_(first), Specimen.type_id == type_id, Specimen.status == "catalogued"
            )
        )
    )
    chosen = [i for i in first if i in set(chosen)][:limit]
    if len(chosen) < limit:
        chosen += session.scalars(
            select(Specimen.id)
            .where(
                Specimen.type_id == type_id,
                Specimen.status == "catalogued",
                Specimen.id.not_in(chosen or [-1]),
            )
            .order_by(Specimen.accession)
            .limit(limit - len(chosen))
        ).all()
    accessions = dict(
        session.execute(select(Specimen.id, Specimen.accession).where(Specimen.id.in_(chosen)))
        .tuples()
        .all()
    )
    sides = side_thumbnails(session, chosen)
    return [
        {"specimen_id": i, "accession": accessions[i], "sides": sides.get(i, [])}
        for i in chosen
        if i in accessions
    ]
