"""Link two specimens as the two sides of one coin.

A backlog photographed one side per file, under names that do not say which side, arrives as two
specimens per coin. A reviewer who sees that two of them are one coin links them: the second's
photos join the first as its other side, its audit trail moves with them, and its accession
becomes an alias of the first (``AccessionAlias``), so ingest and identify run again over the
same files find the photos where they now are and add nothing twice. The coin's suggestions came
from one side; they are cleared, to be made again from both (the server does it at once, a re-run
of ``coinlens identify`` does it for coins without suggestions).

The link's review keeps all it moved and cleared, so ``undo_link`` can part the two coins again
exactly as they were: the second specimen back under its own id and accession, with its photos,
its trail, its aliases and both coins' suggestions.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from coinlens.catalog import (
    SPECIMEN_MEASURES,
    AccessionAlias,
    Catalog,
    CoinType,
    Image,
    QueueSkip,
    Review,
    Specimen,
    Suggestion,
    specimen_by_accession,
)
from coinlens.review.actions import (
    ReviewConflict,
    ReviewError,
    specimen_as_seen,
    specimen_state,
    stale_conflict,
    update_if_unchanged,
)

OTHER_SIDE = {"obverse": "reverse", "reverse": "obverse"}
# The status a linked coin keeps: the most settled of the two.
_SETTLED = ("backlog", "in_review", "catalogued")
# What a link may change on the coin kept, and what it must know to bring the other one back.
_KEPT_FIELDS = (
    "status",
    "type_id",
    *SPECIMEN_MEASURES,
    "notes",
    "suggested_type_id",
    "suggestion_score",
    "suggestion_margin",
    "decision",
)
_MERGED_FIELDS = ("id", "accession", "batch", "version", *_KEPT_FIELDS)
_SUGGESTION_FIELDS = (
    "specimen_id",
    "model_version_id",
    "rank",
    "type_id",
    "score",
    "evidence",
    "decision",
)


def _snapshot(session: Session, keeper: Specimen, merged: Specimen) -> dict[str, Any]:
    """All a link moves, changes or clears, for ``undo_link``."""
    ids = (keeper.id, merged.id)
    suggestions = session.scalars(
        select(Suggestion).where(Suggestion.specimen_id.in_(ids)).order_by(Suggestion.id)
    ).all()
    return {
        "keeper": {name: getattr(keeper, name) for name in _KEPT_FIELDS},
        "unknown_images": [i.id for i in keeper.images if i.side == "unknown"],
        "merged": {name: getattr(merged, name) for name in _MERGED_FIELDS}
        | {"created_at": merged.created_at.isoformat()},
        "merged_images": {str(i.id): i.side for i in merged.images},
        "merged_reviews": list(
            session.scalars(select(Review.id).where(Review.specimen_id == merged.id))
        ),
        "merged_aliases": list(
            session.scalars(
                select(AccessionAlias.id).where(AccessionAlias.specimen_id == merged.id)
            )
        ),
        "merged_skips": list(
            session.scalars(select(QueueSkip.reviewer).where(QueueSkip.specimen_id == merged.id))
        ),
        "suggestions": [
            {name: getattr(s, name) for name in _SUGGESTION_FIELDS}
            | {"created_at": s.created_at.isoformat()}
            for s in suggestions
        ],
    }


def _sides(specimen: Specimen) -> set[str]:
    return {image.side for image in specimen.images}


def _check_sides(specimen: Specimen, side: str) -> None:
    """A specimen's photos can be called ``side`` only if none shows both sides or the other."""
    shown = _sides(specimen)
    if "both" in shown:
        raise ReviewError(f"specimen {specimen.accession} has a photo of both sides already")
    if OTHER_SIDE[side] in shown:
        raise ReviewError(
            f"specimen {specimen.accession} has a photo of the {OTHER_SIDE[side]} already; "
            f"its photos cannot be the {side}"
        )


def _type_name(session: Session, type_id: int | None) -> str:
    coin_type = session.get(CoinType, type_id) if type_id is not None else None
    return coin_type.reference if coin_type else "no type"


def link_sides(
    catalog: Catalog,
    specimen_id: int,
    other: str,
    *,
    side: str,
    reviewer: str,
    expected_version: int | None,
    other_version: int | None = None,
) -> dict[str, Any]:
    """Join the photos of the specimen with accession ``other`` to specimen ``specimen_id`` as
    its other side: this specimen's photos show ``side`` (obverse or reverse), the other's the
    opposite. One transaction; the other specimen is gone afterwards, its accession an alias.

    Refused (``ReviewError``) where the two cannot be one coin: the same specimen, a photo of
    both sides already, a side taken, two different types, the same photo in both. The version
    checks (``ReviewConflict``) cover both specimens, so nobody's change to either is lost.
    Measures and notes the first lacks are taken from the other; where both have a measure and
    they differ, the first's is kept and the audit trail says so.
    """
    if side not in OTHER_SIDE:
        raise ReviewError(f"side {side!r}: use obverse or reverse (what this coin's photos show)")
    other = (other or "").strip()
    if not other:
        raise ReviewError("give the accession of the coin whose photos are the other side")
    with catalog.session() as session:
        keeper, version = specimen_as_seen(session, specimen_id, expected_version)
        merged = specimen_by_accession(session, other)
        if merged is None:
            raise ReviewError(f"no specimen has accession {other!r}")
        if merged.id == keeper.id:
            if merged.accession != other:
                raise ReviewError(f"{other!r} is already linked to this coin")
            raise ReviewError("a coin cannot be linked to itself")
        if merged.accession != other:
            raise ReviewError(f"{other!r} is already linked to specimen {merged.accession}")
        if other_version is not None and merged.version != other_version:
            raise stale_conflict(session, merged, other_version)
        _check_sides(keeper, side)
        _check_sides(merged, OTHER_SIDE[side])
        if None not in (keeper.type_id, merged.type_id) and keeper.type_id != merged.type_id:
            raise ReviewError(
                f"{keeper.accession} is {_type_name(session, keeper.type_id)} and "
                f"{merged.accession} is {_type_name(session, merged.type_id)}: correct one "
                "first, then link them"
            )
        shared = {i.sha256 for i in keeper.images} & {i.sha256 for i in merged.images}
        if shared:
            raise ReviewError(
                f"{keeper.accession} and {merged.accession} hold the same photo: it cannot show "
                "both sides"
            )

        values: dict[str, Any] = {
            "suggested_type_id": None,
            "suggestion_score": None,
            "suggestion_margin": None,
            "decision": None,
        }
        settled = max(keeper, merged, key=lambda s: _SETTLED.index(s.status))
        if settled.status != keeper.status:
            values["status"] = settled.status
            values["type_id"] = settled.type_id
        kept: list[str] = []
        for name in SPECIMEN_MEASURES:
            mine, theirs = getattr(keeper, name), getattr(merged, name)
            if mine is None and theirs is not None:
                values[name] = theirs
            elif theirs is not None and theirs != mine:
                kept.append(f"{name} {mine} kept ({merged.accession}: {theirs})")
        if merged.notes:
            notes = json.loads(keeper.notes) if keeper.notes else {}
            for name, value in json.loads(merged.notes).items():
                notes.setdefault(name, value)
            values["notes"] = json.dumps(notes, ensure_ascii=False, sort_keys=True)
        before = _snapshot(session, keeper, merged)
        # Both rows are claimed by their versions before anything moves: a second reviewer
        # linking the same coin meanwhile (elsewhere, or in the other direction) finds one of
        # them changed or gone and is refused, instead of moving no photos or failing.
        merged_version = merged.version
        if not update_if_unchanged(session, merged, merged_version, {}):
            raise ReviewConflict(
                f"specimen {other} was changed or linked by someone else meanwhile; reload it"
            )
        if not update_if_unchanged(session, keeper, version, values):
            raise stale_conflict(session, keeper, version)

        merged_id, merged_accession = merged.id, merged.accession
        session.expunge(merged)  # from here on rows move by statements, not by the ORM
        session.execute(
            update(Image)
            .where(Image.specimen_id == specimen_id, Image.side == "unknown")
            .values(side=side)
        )
        moved = session.execute(
            update(Image)
            .where(Image.specimen_id == merged_id)
            .values(specimen_id=specimen_id, side=OTHER_SIDE[side])
        ).rowcount
        session.execute(
            update(Review).where(Review.specimen_id == merged_id).values(specimen_id=specimen_id)
        )
        session.execute(
            update(AccessionAlias)
            .where(AccessionAlias.specimen_id == merged_id)
            .values(specimen_id=specimen_id)
        )
        session.execute(
            delete(Suggestion).where(Suggestion.specimen_id.in_((specimen_id, merged_id)))
        )
        session.execute(delete(Specimen).where(Specimen.id == merged_id))
        alias = AccessionAlias(alias=merged_accession, specimen_id=specimen_id)
        session.add(alias)
        session.flush()
        before["alias_id"] = alias.id
        comment = (
            f"{merged_accession}'s photos linked as the {OTHER_SIDE[side]}; this coin's show "
            f"the {side}"
        )
        review = Review(
            specimen_id=specimen_id,
            reviewer=reviewer,
            action="link",
            from_type_id=keeper.type_id,
            to_type_id=values.get("type_id", keeper.type_id),
            comment="; ".join([comment, *kept]),
            before=before,
            after={"linked": merged_accession},
            version_after=version + 1,
        )
        session.add(review)
        session.flush()
        review_id = review.id
        session.expire_all()
        keeper = session.get(Specimen, specimen_id)
        return {
            **specimen_state(keeper),
            "action": "link",
            "review_id": review_id,
            "linked": merged_accession,
            "images_moved": moved,
            "sides": sorted(_sides(keeper)),
        }


def undo_link(session: Session, review: Review, reviewer: str, comment: str | None) -> Review:
    """Part the coins a link joined (``review``), as they were before it: the second specimen
    back with its id, accession, photos and their sides, trail, aliases and skips; both coins'
    suggestions and the first's fields as the link found them. Refused (``ReviewConflict``)
    where the coin changed after the link. Returns the undo's review (not yet flushed)."""
    before = review.before or {}
    keeper = session.get(Specimen, review.specimen_id)
    if keeper is None or keeper.version != review.version_after:
        raise ReviewConflict(
            f"the coin was changed after this link{_later_reviewers(session, review)}: undo "
            "that change first"
        )
    merged = before["merged"]
    if session.get(Specimen, merged["id"]) is not None or specimen_by_accession(
        session, merged["accession"]
    ) not in (None, keeper):
        raise ReviewConflict(f"specimen {merged['accession']} exists again; nothing was undone")
    if not update_if_unchanged(session, keeper, keeper.version, before["keeper"]):
        raise stale_conflict(session, keeper, review.version_after)
    restored = {name: merged[name] for name in _MERGED_FIELDS}
    restored["version"] = merged["version"] + 1
    session.add(Specimen(**restored, created_at=datetime.fromisoformat(merged["created_at"])))
    session.flush()
    session.execute(delete(AccessionAlias).where(AccessionAlias.id == before["alias_id"]))
    for image_id, side in before["merged_images"].items():
        session.execute(
            update(Image)
            .where(Image.id == int(image_id))
            .values(specimen_id=merged["id"], side=side)
        )
    if before["unknown_images"]:
        session.execute(
            update(Image).where(Image.id.in_(before["unknown_images"])).values(side="unknown")
        )
    for model, ids in (
        (Review, before["merged_reviews"]),
        (AccessionAlias, before["merged_aliases"]),
    ):
        if ids:
            session.execute(update(model).where(model.id.in_(ids)).values(specimen_id=merged["id"]))
    for name in before["merged_skips"]:
        session.add(QueueSkip(reviewer=name, specimen_id=merged["id"]))
    session.execute(delete(Suggestion).where(Suggestion.specimen_id.in_((keeper.id, merged["id"]))))
    for row in before["suggestions"]:
        created = datetime.fromisoformat(row["created_at"])
        session.add(Suggestion(**{k: row[k] for k in _SUGGESTION_FIELDS}, created_at=created))
    note = f"{merged['accession']}'s photos parted from this coin again (the link undone)"
    return Review(
        specimen_id=keeper.id,
        reviewer=reviewer,
        action="undo",
        from_type_id=keeper.type_id,
        to_type_id=before["keeper"]["type_id"],
        comment="; ".join(filter(None, [note, (comment or "").strip()])),
        before={"linked": merged["accession"]},
        after={"parted": merged["accession"]},
        version_after=review.version_after + 1,
        undoes_id=review.id,
    )


def _later_reviewers(session: Session, review: Review) -> str:
    """ " by NAME (ACTION), ..." of the reviews of the coin after ``review``, or ""."""
    later = session.execute(
        select(Review.reviewer, Review.action)
        .where(
            Review.specimen_id == review.specimen_id,
            Review.id > review.id,
            Review.action != "skip",
        )
        .order_by(Review.id)
    ).all()
    names = dict.fromkeys(f"{who} ({action.replace('_', ' ')})" for who, action in later)
    return f" by {', '.join(names)}" if names else ""
