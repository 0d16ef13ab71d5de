"""What a reviewer does to a coin: accept, correct, flag as a possible new type, skip, bulk
accept, and re-attribute a catalogued coin.

Every action is one transaction that writes a Review row (the audit trail) holding what an undo
needs (``coinlens.review.undo``). Actions that change a specimen carry the version the reviewer
saw; if someone else changed it meanwhile the action is refused with ``ReviewConflict`` and
nothing is overwritten (optimistic locking). A catalogued coin is the museum's record: the queue's
one-key actions never touch it, only a deliberate ``reattribute`` with its reason does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from coinlens.catalog import (
    Catalog,
    CoinType,
    QueueSkip,
    Review,
    Specimen,
    TypeEdit,
    type_references,
)
from coinlens.catalog.models import utcnow
from coinlens.config import Settings
from coinlens.identify.batches import audit_verdict, refresh_hold
from coinlens.identify.partial import check_attribution

# what the queue offers for a backlog or flagged coin
QUEUE_ACTIONS = ("accept", "correct", "new_type", "skip")
ACTIONS = (*QUEUE_ACTIONS, "reattribute", "partial")


class ReviewError(ValueError):
    """The action cannot be applied (an unknown type, a missing specimen...)."""


class SpecimenNotFound(ReviewError):
    """No specimen has that id."""


class ReviewConflict(RuntimeError):
    """Somebody changed the specimen after the reviewer loaded it."""


class CataloguedCoin(ReviewConflict):
    """A queue action (accept, correct, flag, skip) on a coin that is catalogued already: its
    type changes only by ``reattribute``, with a reason."""


def review_specimen(
    catalog: Catalog,
    specimen_id: int,
    *,
    reviewer: str,
    action: str,
    expected_version: int | None,
    type_id: int | None = None,
    comment: str | None = None,
    add_type: str | None = None,
    attribution: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Apply one action; return the specimen's new state.

    ``accept`` takes the suggested type unless ``type_id`` names another (then it is recorded as
    ``correct``); ``correct`` needs ``type_id``; both catalogue the specimen. ``new_type`` flags
    it (status in_review) for a curator to add its type. ``skip`` only leaves a trace.
    These four act on backlog and flagged coins only: on a catalogued one they are refused
    (``CataloguedCoin``), which ``reattribute`` (``type_id`` and the reason as ``comment``)
    changes instead.
    ``add_type`` (with ``correct`` or ``reattribute``, no ``type_id``): the reference of a type
    the catalogue lacks, added in the same transaction, so that this coin becomes its first
    reference (an existing type of that reference is used as it is).
    ``expected_version`` None means "whatever is there now" (scripts that accept the risk).
    ``partial`` records ``attribution``, the levels a reviewer is sure of ({"authority": ...,
    "mint": ...}, ``identify.partial``), on a backlog or flagged coin, which stays in review for
    its exact type; accepting a type later supersedes it.
    The state returned carries ``review_id``, the trail's row (``undo_review`` takes it).
    """
    if action not in ACTIONS:
        raise ReviewError(f"action {action!r}: use one of {', '.join(ACTIONS)}")
    if action == "reattribute" and not (comment or "").strip():
        raise ReviewError("re-attributing a catalogued coin needs the reason, as the comment")
    if add_type is not None:
        add_type = add_type.strip()
        if action not in ("correct", "reattribute") or type_id is not None or not add_type:
            raise ReviewError("a new type is added by a correct action with its reference alone")
    if action == "partial":
        try:
            attribution = check_attribution(attribution or {})
        except ValueError as exc:
            raise ReviewError(str(exc)) from None
    elif attribution:
        raise ReviewError("a partial attribution is given by the action partial")
    try:
        return _review(
            catalog,
            specimen_id,
            reviewer,
            action,
            expected_version,
            type_id,
            comment,
            add_type,
            attribution,
        )
    except IntegrityError:
        if add_type is None:
            raise
        # the same reference added by someone else meanwhile: nothing of this action was kept
        raise ReviewConflict(f"type {add_type!r} was added meanwhile; review again") from None


def _review(
    catalog: Catalog,
    specimen_id: int,
    reviewer: str,
    action: str,
    expected_version: int | None,
    type_id: int | None,
    comment: str | None,
    add_type: str | None,
    attribution: dict[str, str] | None = None,
) -> dict[str, Any]:
    with catalog.session() as session:
        specimen, version = specimen_as_seen(session, specimen_id, expected_version)
        from_type = specimen.type_id
        if specimen.status == "catalogued" and action != "reattribute":
            raise CataloguedCoin(
                f"specimen {specimen.accession} is catalogued as "
                f"{_reference(session, from_type)}: {action} acts on backlog and flagged coins "
                "only; to change its type, re-attribute it (action reattribute, with the reason "
                "as comment)"
            )
        if action == "reattribute" and specimen.status != "catalogued":
            raise ReviewError(
                f"specimen {specimen.accession} is {specimen.status.replace('_', ' ')}, not "
                "catalogued: accept or correct it"
            )
        if add_type is not None:
            added = session.scalar(select(CoinType).where(CoinType.reference == add_type))
            if added is None:
                lookalike = session.scalar(
                    select(CoinType.reference).where(
                        func.lower(CoinType.reference) == add_type.lower()
                    )
                )
                if lookalike is not None:  # "2E" for "2e": a typing slip, not a new type
                    raise ReviewError(
                        f"the catalogue has type {lookalike!r}; choose it, or give the new type "
                        f"a reference other than {add_type!r}"
                    )
                added = CoinType(reference=add_type)
                session.add(added)
                session.flush()
            type_id = added.id
        values: dict[str, Any] = {}
        if action in ("accept", "correct"):
            chosen = type_id if type_id is not None else specimen.suggested_type_id
            if chosen is None:
                raise ReviewError(f"specimen {specimen_id}: no type given and none suggested")
            if session.get(CoinType, chosen) is None:
                raise ReviewError(f"type {chosen} does not exist")
            if action == "accept" and chosen != specimen.suggested_type_id:
                action = "correct"
            values = {"type_id": chosen, "status": "catalogued"}
            if specimen.attribution is not None:  # the exact type supersedes a partial one
                values["attribution"] = None
        elif action == "partial":
            if attribution == specimen.attribution:
                raise ReviewError(f"specimen {specimen.accession} has that attribution already")
            values = {"attribution": attribution}
        elif action == "reattribute":
            if type_id is None:
                raise ReviewError("reattribute needs the type the coin is to have")
            if session.get(CoinType, type_id) is None:
                raise ReviewError(f"type {type_id} does not exist")
            if type_id == from_type:
                raise ReviewError(
                    f"specimen {specimen.accession} is {_reference(session, type_id)} already"
                )
            values = {"type_id": type_id}
        elif action == "new_type":
            values = {"type_id": None, "status": "in_review"}
        before = {name: getattr(specimen, name) for name in values}
        if values and not update_if_unchanged(session, specimen, version, values):
            raise stale_conflict(session, specimen, version)
        if action == "skip":  # behind the others in this reviewer's queue, until undone
            skipped = session.scalar(
                select(QueueSkip).where(
                    QueueSkip.reviewer == reviewer, QueueSkip.specimen_id == specimen_id
                )
            )
            if skipped is None:
                session.add(QueueSkip(reviewer=reviewer, specimen_id=specimen_id))
            else:
                skipped.at = utcnow()
        session.flush()
        session.refresh(specimen)
        review = Review(
            specimen_id=specimen_id,
            reviewer=reviewer,
            action=action,
            from_type_id=from_type,
            to_type_id=values.get("type_id", from_type),
            comment=(comment or "").strip() or None,
            before=before,
            after=values,
            version_after=specimen.version,
        )
        session.add(review)
        session.flush()
        return {**specimen_state(specimen), "action": action, "review_id": review.id}


def specimen_state(specimen: Specimen) -> dict[str, Any]:
    """What a review answers about the specimen it acted on."""
    return {
        "id": specimen.id,
        "accession": specimen.accession,
        "status": specimen.status,
        "type_id": specimen.type_id,
        "attribution": specimen.attribution,
        "version": specimen.version,
    }


def _reference(session: Session, type_id: int | None) -> str:
    coin_type = session.get(CoinType, type_id) if type_id is not None else None
    return coin_type.reference if coin_type else "no type"


def specimen_as_seen(
    session: Session, specimen_id: int, expected_version: int | None
) -> tuple[Specimen, int]:
    """The specimen and the version a reviewer acts on: refused if it is missing, or if it
    changed since the reviewer saw ``expected_version`` (None: whatever it is now)."""
    specimen = session.get(Specimen, specimen_id)
    if specimen is None:
        raise SpecimenNotFound(f"specimen {specimen_id} does not exist")
    version = specimen.version if expected_version is None else expected_version
    if specimen.version != version:
        raise stale_conflict(session, specimen, version)
    return specimen, version


def update_if_unchanged(
    session: Session, row: Specimen | CoinType, version: int, values: dict[str, Any]
) -> bool:
    """Write ``values`` to ``row`` and raise its version, only if its version is still the one
    the reviewer saw (one UPDATE, so two reviewers cannot both pass); False, with ``row``
    refreshed, if someone changed it meanwhile."""
    model = type(row)
    if model is Specimen:
        values = {**values, "updated_at": utcnow()}
    changed = session.execute(
        update(model)
        .where(model.id == row.id, model.version == version)
        .values(**values, version=model.version + 1)
        .execution_options(synchronize_session=False)
    ).rowcount
    if changed != 1:
        session.refresh(row)
    return changed == 1


def stale_conflict(session: Session, row: Specimen | CoinType, seen: int) -> ReviewConflict:
    """The refusal of a change made on a stale page: who changed the record since."""
    if isinstance(row, Specimen):
        last = session.scalar(
            select(Review).where(Review.specimen_id == row.id).order_by(Review.id.desc())
        )
        what = f"specimen {row.accession}"
        who = f" by {last.reviewer} ({last.action})" if last else ""
    else:
        edit = session.scalar(
            select(TypeEdit).where(TypeEdit.type_id == row.id).order_by(TypeEdit.id.desc())
        )
        what = f"type {row.reference}"
        who = f" by {edit.reviewer}" if edit else ""
    return ReviewConflict(
        f"{what} was changed{who} after you opened it (version {seen}, now {row.version}); "
        "reload it to see the change"
    )


def _bulk_query(batch: str | None):
    query = select(
        Specimen.id, Specimen.suggested_type_id, Specimen.version, Specimen.type_id
    ).where(
        Specimen.status == "backlog",
        Specimen.decision == "auto_accept",
        Specimen.suggested_type_id.is_not(None),
    )
    return query.where(Specimen.batch == batch) if batch else query


def bulk_accept_candidates(
    session: Session, batch: str | None, settings: Settings | None = None
) -> int:
    """How many coins ``bulk_accept`` would catalogue now (for the confirmation); with
    ``settings``, after the batch's hold was settled again by its audit."""
    if batch and settings is not None:
        refresh_hold(session, batch, settings)
    return session.scalar(select(func.count()).select_from(_bulk_query(batch).subquery())) or 0


@dataclass(frozen=True)
class BulkAccepted:
    """What one bulk accept catalogued: the specimens, and the review that undoes them all."""

    specimen_ids: list[int]
    review_id: int | None  # None where nothing was waiting


class AuditRequired(ReviewConflict):
    """The batch's auto-accept is held until an audit allows it."""


def bulk_accept(
    catalog: Catalog,
    batch: str | None,
    *,
    reviewer: str,
    expected_count: int | None = None,
    settings: Settings | None = None,
) -> BulkAccepted:
    """Accept every ``auto_accept`` suggestion of ``batch`` (all batches if None) in one go.

    ``expected_count`` is what the reviewer confirmed; if the queue changed since, nothing is
    done (``ReviewConflict``). A batch whose auto-accept is held for an audit is refused
    (``AuditRequired``; its audit is judged against ``settings``, the home's). Returns the ids
    of the specimens catalogued and the review id of the whole accept (its reviews share it as
    ``group_id``; ``undo_review`` undoes them at once).
    """
    with catalog.session() as session:
        if batch and settings is not None and refresh_hold(session, batch, settings):
            verdict = audit_verdict(session, batch, settings)
            raise AuditRequired(
                f"batch {batch}: auto-accept is held for an audit (its photography differs "
                f"from the calibration coins, or its audit found a mistake); {verdict.sentence()}"
            )
        rows = session.execute(_bulk_query(batch).with_for_update()).all()
        if expected_count is not None and expected_count != len(rows):
            raise ReviewConflict(
                f"batch {batch or '(all)'}: {len(rows)} coins are ready to accept now, "
                f"not the {expected_count} you confirmed; look again"
            )
        now = utcnow()
        group_id = None
        for specimen_id, type_id, version, type_before in rows:
            changed = session.execute(
                update(Specimen)
                .where(Specimen.id == specimen_id, Specimen.version == version)
                .values(
                    type_id=type_id,
                    status="catalogued",
                    version=Specimen.version + 1,
                    updated_at=now,
                )
                .execution_options(synchronize_session=False)
            ).rowcount
            if changed != 1:
                raise ReviewConflict(f"specimen {specimen_id} changed during the bulk accept")
            review = Review(
                specimen_id=specimen_id,
                reviewer=reviewer,
                action="bulk_accept",
                from_type_id=type_before,
                to_type_id=type_id,
                comment=f"batch {batch}" if batch else None,
                at=now,
                before={"type_id": type_before, "status": "backlog"},
                after={"type_id": type_id, "status": "catalogued"},
                version_after=version + 1,
                group_id=group_id,
            )
            session.add(review)
            if group_id is None:  # the first review names the group
                session.flush()
                group_id = review.group_id = review.id
        return BulkAccepted([row[0] for row in rows], group_id)


def history(session: Session, specimen_id: int) -> list[dict[str, Any]]:
    """The audit trail of a specimen, oldest first, with type references; each entry says
    whether it was undone (``undone_by``: the undo's reviewer)."""
    reviews = session.scalars(
        select(Review).where(Review.specimen_id == specimen_id).order_by(Review.id)
    ).all()
    type_ids = {r.from_type_id for r in reviews} | {r.to_type_id for r in reviews}
    references = type_references(session, type_ids)
    undone = {r.undoes_id: r.reviewer for r in reviews if r.undoes_id is not None}
    return [
        {
            "review_id": r.id,
            "at": r.at.isoformat(),
            "reviewer": r.reviewer,
            "action": r.action,
            "from_type": references.get(r.from_type_id),
            "to_type": references.get(r.to_type_id),
            "comment": r.comment,
            "undone_by": undone.get(r.id),
        }
        for r in reviews
    ]
