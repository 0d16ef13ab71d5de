"""What a curator writes down beside the attribution: a coin's measures, a type's record.

Cataloguing a coin is more than its type: its weight, diameter and die axis are measured at the
bench, and a type added in review starts as a bare reference. Ingest never overwrites what the
catalogue holds (a manifest fills only what is missing), so these edits are how a value is
corrected. The values are checked by the same rules as a manifest's (``coinlens.ingest``); each
edit is one transaction, guarded by the version the curator saw, and leaves an audit trail (a
``record`` review for a specimen, a ``TypeEdit`` for a type).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from coinlens.catalog import (
    SPECIMEN_MEASURES,
    TYPE_DESCRIPTORS,
    Catalog,
    CoinType,
    Review,
    Specimen,
    TypeEdit,
)
from coinlens.catalog.models import utcnow
from coinlens.ingest import check_dates, parse_measures, parse_type_descriptors
from coinlens.review.actions import (
    ReviewConflict,
    ReviewError,
    SpecimenNotFound,
    specimen_conflict,
)

TYPE_RECORD_FIELDS = ("uri", *TYPE_DESCRIPTORS, "description")
# the longest text each field holds (the columns' widths; a description is free text)
_TEXT_LIMITS = {"uri": 1024, "description": 4000} | {
    name: 255 for name in ("authority", "mint", "denomination", "material")
}


class TypeNotFound(ReviewError):
    """No type has that id."""


def _texts(values: Mapping[str, Any], allowed: tuple[str, ...]) -> dict[str, str]:
    """Each value given as stripped text ("" clears it); unknown fields refused."""
    unknown = sorted(set(values) - set(allowed))
    if unknown:
        raise ReviewError(f"unknown field {unknown[0]!r}: use {', '.join(allowed)}")
    texts = {name: "" if value is None else str(value).strip() for name, value in values.items()}
    for name, text in texts.items():
        limit = _TEXT_LIMITS.get(name)
        if limit is not None and len(text) > limit:
            raise ReviewError(f"{name} is {len(text)} characters long (at most {limit})")
    return texts


def _changes(current: object, texts: dict[str, str], parsed: dict[str, Any]) -> dict[str, list]:
    """{field: [old, new]} for the fields whose value differs from ``current``'s."""
    changes = {}
    for name, text in texts.items():
        new = parsed.get(name, text or None)
        old = getattr(current, name)
        if new != old:
            changes[name] = [old, new]
    return changes


def describe_changes(changes: dict[str, list]) -> str:
    """``changes`` ({field: [old, new]}) as one line: "weight_g 3.92 (was none); ..."."""

    def shown(value: Any) -> str:
        return "none" if value is None else f"{value:g}" if isinstance(value, float) else str(value)

    return "; ".join(
        f"{name} {shown(new)} (was {shown(old)})" for name, (old, new) in changes.items()
    )


def record_measures(
    catalog: Catalog,
    specimen_id: int,
    *,
    reviewer: str,
    expected_version: int | None,
    values: Mapping[str, Any],
) -> dict[str, Any]:
    """Set a specimen's measures (``weight_g``, ``diameter_mm``, ``die_axis``): each field given
    is written, a blank one cleared, the others kept. Nothing changed, nothing written (no new
    version, no trail). ``expected_version`` None means "whatever is there now"."""
    texts = _texts(values, SPECIMEN_MEASURES)
    try:
        parsed = parse_measures(texts)
    except ValueError as exc:
        raise ReviewError(str(exc)) from None
    with catalog.session() as session:
        specimen = session.get(Specimen, specimen_id)
        if specimen is None:
            raise SpecimenNotFound(f"specimen {specimen_id} does not exist")
        version = specimen.version if expected_version is None else expected_version
        if specimen.version != version:
            raise specimen_conflict(session, specimen, version)
        changes = _changes(specimen, texts, parsed)
        if changes:
            changed = session.execute(
                update(Specimen)
                .where(Specimen.id == specimen_id, Specimen.version == version)
                .values(
                    **{name: new for name, (_, new) in changes.items()},
                    version=Specimen.version + 1,
                    updated_at=utcnow(),
                )
                .execution_options(synchronize_session=False)
            ).rowcount
            if changed != 1:
                session.refresh(specimen)
                raise specimen_conflict(session, specimen, version)
            session.add(
                Review(
                    specimen_id=specimen_id,
                    reviewer=reviewer,
                    action="record",
                    from_type_id=specimen.type_id,
                    to_type_id=specimen.type_id,
                    comment=describe_changes(changes),
                )
            )
            session.flush()
            session.refresh(specimen)
        return {
            "id": specimen.id,
            "accession": specimen.accession,
            "version": specimen.version,
            **{name: getattr(specimen, name) for name in SPECIMEN_MEASURES},
            "changed": changes,
        }


def record_type(
    catalog: Catalog,
    type_id: int,
    *,
    reviewer: str,
    expected_version: int | None,
    values: Mapping[str, Any],
) -> dict[str, Any]:
    """Set a type's record (``uri``, the descriptors, ``description``) as ``record_measures``
    sets a specimen's. The reference, the type's identity in exports and models, stays."""
    texts = _texts(values, TYPE_RECORD_FIELDS)
    try:
        parsed = parse_type_descriptors(texts)
    except ValueError as exc:
        raise ReviewError(str(exc)) from None
    with catalog.session() as session:
        coin_type = session.get(CoinType, type_id)
        if coin_type is None:
            raise TypeNotFound(f"type {type_id} does not exist")
        version = coin_type.version if expected_version is None else expected_version
        if coin_type.version != version:
            raise type_conflict(session, coin_type, version)
        changes = _changes(coin_type, texts, parsed)
        dates = {name: getattr(coin_type, name) for name in ("date_from", "date_to")}
        dates |= {name: new for name, (_, new) in changes.items() if name in dates}
        try:
            check_dates(dates["date_from"], dates["date_to"])
        except ValueError as exc:
            raise ReviewError(str(exc)) from None
        if changes:
            changed = session.execute(
                update(CoinType)
                .where(CoinType.id == type_id, CoinType.version == version)
                .values(
                    **{name: new for name, (_, new) in changes.items()},
                    version=CoinType.version + 1,
                )
                .execution_options(synchronize_session=False)
            ).rowcount
            if changed != 1:
                session.refresh(coin_type)
                raise type_conflict(session, coin_type, version)
            session.add(TypeEdit(type_id=type_id, reviewer=reviewer, changes=changes))
            session.flush()
            session.refresh(coin_type)
        return {
            "id": coin_type.id,
            "reference": coin_type.reference,
            "version": coin_type.version,
            **{name: getattr(coin_type, name) for name in TYPE_RECORD_FIELDS},
            "changed": changes,
        }


def type_history(session: Session, type_id: int) -> list[dict[str, Any]]:
    """The edits of a type's record, oldest first."""
    edits = session.scalars(
        select(TypeEdit).where(TypeEdit.type_id == type_id).order_by(TypeEdit.id)
    ).all()
    return [
        {
            "at": e.at.isoformat(),
            "reviewer": e.reviewer,
            "changes": e.changes,
            "summary": describe_changes(e.changes),
        }
        for e in edits
    ]


def type_conflict(session: Session, coin_type: CoinType, seen: int) -> ReviewConflict:
    last = session.scalar(
        select(TypeEdit).where(TypeEdit.type_id == coin_type.id).order_by(TypeEdit.id.desc())
    )
    who = f" by {last.reviewer}" if last else ""
    return ReviewConflict(
        f"type {coin_type.reference} was changed{who} after you opened it (version {seen}, now "
        f"{coin_type.version}); reload it to see the change"
    )
