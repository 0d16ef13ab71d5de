"""One export record per specimen: what the catalogue knows, gathered a chunk at a time."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, select

from coinlens.catalog import Catalog, CoinType, Image, Review, Specimen, split_notes
from coinlens.vision.localise import crop_side

FORMATS = ("csv", "jsonld", "iiif")
EXPORT_STATUSES = ("catalogued", "backlog", "in_review", "all")
CHUNK = 500


@dataclass(frozen=True)
class ExportImage:
    side: str
    key: str  # the coin's crop, what a viewer wants to see
    original_key: str
    thumbnail_key: str | None
    width: int
    height: int


@dataclass
class ExportRecord:
    specimen_id: int
    accession: str
    status: str
    weight_g: float | None
    diameter_mm: float | None
    die_axis: int | None
    coin_type: CoinType | None
    images: list[ExportImage] = field(default_factory=list)
    notes: str | None = None  # the curator's note
    fields: dict[str, Any] = field(default_factory=dict)  # what an import kept ("lot", ...)
    attribution: dict[str, str] = field(default_factory=dict)  # a reviewer's partial one
    reviewer: str | None = None
    reviewed_at: datetime | None = None

    def side(self, name: str) -> ExportImage | None:
        return next((image for image in self.images if image.side == name), None)


def _export_image(image: Image) -> ExportImage:
    crop = image.crop or {}
    if crop.get("key") and "w" in crop:
        _, side = crop_side(max(int(crop["w"]), int(crop["h"])))
        return ExportImage(image.side, crop["key"], image.key, image.thumbnail_key, side, side)
    return ExportImage(
        image.side, image.key, image.key, image.thumbnail_key, image.width, image.height
    )


def export_records(
    catalog: Catalog, status: str = "catalogued", *, specimen_id: int | None = None
) -> Iterator[ExportRecord]:
    """Every specimen with ``status`` ("all" for every one), ordered by accession; or the one
    with ``specimen_id``."""
    if status not in EXPORT_STATUSES:
        raise ValueError(f"status {status!r}: use one of {', '.join(EXPORT_STATUSES)}")
    last = ""
    while True:
        with catalog.reader() as session:
            query = select(Specimen).where(Specimen.accession > last)
            if status != "all":
                query = query.where(Specimen.status == status)
            if specimen_id is not None:
                query = query.where(Specimen.id == specimen_id)
            specimens = session.scalars(query.order_by(Specimen.accession).limit(CHUNK)).all()
            if not specimens:
                return
            ids = [s.id for s in specimens]
            types = {
                t.id: t
                for t in session.scalars(
                    select(CoinType).where(
                        CoinType.id.in_({s.type_id for s in specimens if s.type_id})
                    )
                )
            }
            images: dict[int, list[ExportImage]] = {}
            for image in session.scalars(
                select(Image).where(Image.specimen_id.in_(ids)).order_by(Image.id)
            ):
                images.setdefault(image.specimen_id, []).append(_export_image(image))
            newest = (
                select(Review.specimen_id, func.max(Review.id).label("last"))
                # who attributed the coin: measuring it ("record"), skipping it, or linking a
                # side to it that brought no type ("link" with the type unchanged) is not that
                .where(
                    Review.specimen_id.in_(ids),
                    Review.action.not_in(("skip", "record")),
                    ~and_(
                        Review.action == "link",
                        Review.to_type_id.is_not_distinct_from(Review.from_type_id),
                    ),
                )
                .group_by(Review.specimen_id)
                .subquery()
            )
            reviews = {
                r.specimen_id: r
                for r in session.scalars(select(Review).join(newest, Review.id == newest.c.last))
            }
            for s in specimens:
                review = reviews.get(s.id)
                note, fields = split_notes(s.notes)
                yield ExportRecord(
                    specimen_id=s.id,
                    accession=s.accession,
                    status=s.status,
                    weight_g=s.weight_g,
                    diameter_mm=s.diameter_mm,
                    die_axis=s.die_axis,
                    coin_type=types.get(s.type_id),
                    images=images.get(s.id, []),
                    notes=note,
                    fields=fields,
                    attribution=s.attribution or {},
                    reviewer=review.reviewer if review else None,
                    reviewed_at=review.at if review else None,
                )
            last = specimens[-1].accession
