"""What a curator writes down beside the attribution: a coin's measures, a type's record.

Cataloguing a coin is more than its type: its weight, diameter and die axis are measured at the
bench, and a type added in review starts as a bare reference. Ingest never overwrites what the
catalogue holds (a manifest fills only what is missing), so these edits are how a value is
corrected. The values are checked by the same rules as a manifest's (``coinlens.ingest``), every
field at once; each edit is one transaction, guarded by the version the curator saw, and leaves an
audit trail (a ``record`` review for a specimen, undoable like any review; a ``TypeEdit`` for a
type). A specimen's ``notes`` is the curator's own note, kept beside what an import recorded.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from coinlens.catalog import (
    SPECIMEN_MEASURES,
    TYPE_DESCRIPTORS,
    Catalog,
    CoinType,
    Review,
    Specimen,
    TypeEdit,
    join_notes,
    split_notes,
)
from coinlens.ingest import MEASURE_LABELS, check_dates, check_measures, parse_type_descriptors
from coinlens.review.actions import (
    ReviewError,
    SpecimenNotFound,
    stale_conflict,
    update_if_unchanged,
)

TYPE_RECORD_FIELDS = ("uri", *TYPE_DESCRIPTORS, "description")
SPECIMEN_RECORD_FIELDS = (*SPECIMEN_MEASURES, "notes")
FIELD_LABELS = {**MEASURE_LABELS, "notes": "note"}
# the longest text each field holds (the columns' widths; a description is free text; a measure
# is a number, so anything longer is a paste gone wrong, refused before it is read)
_TEXT_LIMITS = (
    {"uri": 1024, "description": 4000}
    | {name: 255 for name in ("authority", "mint", "denomination", "material")}
    | {name: 32 for name in SPECIMEN_MEASURES}
    | {"notes": 10000}
)


class TypeNotFound(ReviewError):
    """No type has that id."""


class RecordRefused(ReviewError):
    """Values that cannot be read: ``errors`` says what is wrong with each field, in words."""

    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = errors
        super().__init__("; ".join(errors.values()))


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
    """{field: [old, new]} for the fields whose value differs from ``current``'s (a specimen's
    ``notes``: its note)."""
    changes = {}
    for name, text in texts.items():
        new = parsed.get(name, text or None)
        old = _field(current, name)
        if new != old:
            changes[name] = [old, new]
    return changes


def _field(row: object, name: str) -> Any:
    if isinstance(row, Specimen) and name == "notes":
        return split_notes(row.notes)[0]
    return getattr(row, name)


def _new_values(row: object, changes: dict[str, list]) -> dict[str, Any]:
    """The columns to write for ``changes`` (the note beside the notes an import kept)."""
    values = {name: new for name, (_, new) in changes.items()}
    if isinstance(row, Specimen) and "notes" in values:
        values["notes"] = join_notes(values["notes"], split_notes(row.notes)[1])
    return values


# A specimen's fields as a curator reads them in its trail: words and units, not column names.
_UNITS = {"weight_g": " g", "diameter_mm": " mm", "die_axis": " h"}


def describe_changes(changes: dict[str, list]) -> str:
    """``changes`` ({field: [old, new]}) as one line: "mint Rome (was none)"; a specimen's
    fields in words, "weight 3.92 g (was blank)"."""

    def shown(value: Any, unit: str = "") -> str:
        if value is None:
            return "none"
        return (f"{value:g}" if isinstance(value, float) else str(value)) + unit

    parts = []
    for name, (old, new) in changes.items():
        if name in FIELD_LABELS:
            label, unit = FIELD_LABELS[name], _UNITS.get(name, "")
            old_text = "blank" if old is None else shown(old, unit)
            new_text = "cleared" if new is None else shown(new, unit)
            parts.append(f"{label} {new_text} (was {old_text})")
        else:
            parts.append(f"{name} {shown(new)} (was {shown(old)})")
    return "; ".join(parts)


def record_measures(
    catalog: Catalog,
    specimen_id: int,
    *,
    reviewer: str,
    expected_version: int | None,
    values: Mapping[str, Any],
) -> dict[str, Any]:
    """Set a specimen's measures (``weight_g``, ``diameter_mm``, ``die_axis``) and its note
    (``notes``): each field given is written, a blank one cleared, the others kept. Nothing
    changed, nothing written (no new version, no trail). Values that cannot be read are refused
    together (``RecordRefused``). ``expected_version`` None means "whatever is there now"."""

    def trail(specimen: Specimen, changes: dict[str, list], before: dict[str, Any]) -> Review:
        return Review(
            specimen_id=specimen.id,
            reviewer=reviewer,
            action="record",
            from_type_id=specimen.type_id,
            to_type_id=specimen.type_id,
            comment=describe_changes(changes),
            before=before,
            after={name: getattr(specimen, name) for name in before},
            version_after=specimen.version,
        )

    return _record(
        catalog, Specimen, specimen_id, expected_version, SPECIMEN_RECORD_FIELDS, values, trail
    )


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

    def trail(coin_type: CoinType, changes: dict[str, list], _: dict[str, Any]) -> TypeEdit:
        return TypeEdit(type_id=coin_type.id, reviewer=reviewer, changes=changes)

    return _record(catalog, CoinType, type_id, expected_version, TYPE_RECORD_FIELDS, values, trail)


def _record(
    catalog: Catalog,
    model: type[Specimen] | type[CoinType],
    row_id: int,
    expected_version: int | None,
    fields: tuple[str, ...],
    values: Mapping[str, Any],
    trail: Callable[[Any, dict[str, list], dict[str, Any]], object],
) -> dict[str, Any]:
    """Check ``values`` by the manifest's rules, write what differs from ``model`` row
    ``row_id`` if its version is the one seen, with ``trail``'s audit row (given the row as
    written, the changes and the columns' values before); the row's state."""
    texts = _texts(values, fields)
    if model is Specimen:
        parsed, problems = check_measures(texts)
        if problems:
            raise RecordRefused(
                {name: problem.in_words(FIELD_LABELS[name]) for name, problem in problems.items()}
            )
    else:
        try:
            parsed = parse_type_descriptors(texts)
        except ValueError as exc:
            raise ReviewError(str(exc)) from None
    with catalog.session() as session:
        row = session.get(model, row_id)
        if row is None:
            missing = SpecimenNotFound if model is Specimen else TypeNotFound
            raise missing(f"{'specimen' if model is Specimen else 'type'} {row_id} does not exist")
        changes = _changes(row, texts, parsed)
        if model is CoinType:  # the dates in order, as they will stand
            dates = {name: getattr(row, name) for name in ("date_from", "date_to")}
            dates |= {name: new for name, (_, new) in changes.items() if name in dates}
            try:
                check_dates(dates["date_from"], dates["date_to"])
            except ValueError as exc:
                raise ReviewError(str(exc)) from None
        version = row.version if expected_version is None else expected_version
        columns = _new_values(row, changes)
        before = {name: getattr(row, name) for name in columns}
        if row.version != version or (
            changes and not update_if_unchanged(session, row, version, columns)
        ):
            raise stale_conflict(session, row, version)
        review_id = None
        if changes:
            session.refresh(row)
            audit = trail(row, changes, before)
            session.add(audit)
            session.flush()
            review_id = audit.id if isinstance(audit, Review) else None
        name = "accession" if model is Specimen else "reference"
        state = {
            "id": row.id,
            name: getattr(row, name),
            "version": row.version,
            **{field: _field(row, field) for field in fields},
            "changed": changes,
        }
        if model is Specimen:
            state["review_id"] = review_id
        return state


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
