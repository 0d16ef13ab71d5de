"""Link two specimens as the two sides of one coin.

A backlog photographed one side per file, under names that do not say which side, arrives as two
specimens per coin. A reviewer who sees that two of them are one coin links them: the second's
photos join the first as its other side, its audit trail moves with them, and its accession
becomes an alias of the first (``AccessionAlias``), so ingest and identify run again over the
same files find the photos where they now are and add nothing twice. The coin's suggestions came
from one side; they are cleared, to be made again from both (the server does it at once, a re-run
of ``coinlens identify`` does it for coins without suggestions).
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import delete, update
from sqlalchemy.orm import Session

from coinlens.catalog import (
    SPECIMEN_MEASURES,
    AccessionAlias,
    Catalog,
    CoinType,
    Image,
    Review,
    Specimen,
    Suggestion,
    specimen_by_accession,
)
from coinlens.review.actions import (
    ReviewConflict,
    ReviewError,
    specimen_as_seen,
    stale_conflict,
    update_if_unchanged,
)

OTHER_SIDE = {"obverse": "reverse", "reverse": "obverse"}
# The status a linked coin keeps: the most settled of the two.
_SETTLED = ("backlog", "in_review", "catalogued")


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
        session.add(AccessionAlias(alias=merged_accession, specimen_id=specimen_id))
        comment = (
            f"{merged_accession}'s photos linked as the {OTHER_SIDE[side]}; this coin's show "
            f"the {side}"
        )
        session.add(
            Review(
                specimen_id=specimen_id,
                reviewer=reviewer,
                action="link",
                from_type_id=keeper.type_id,
                to_type_id=values.get("type_id", keeper.type_id),
                comment="; ".join([comment, *kept]),
            )
        )
        session.flush()
        session.expire_all()
        keeper = session.get(Specimen, specimen_id)
        return {
            "id": keeper.id,
            "accession": keeper.accession,
            "status": keeper.status,
            "type_id": keeper.type_id,
            "version": keeper.version,
            "action": "link",
            "linked": merged_accession,
            "images_moved": moved,
            "sides": sorted(_sides(keeper)),
        }
