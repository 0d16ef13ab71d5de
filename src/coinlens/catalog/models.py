"""The catalogue's tables (DESIGN.md, "Data model"). Change them only with a new migration."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

SPECIMEN_STATUSES = ("catalogued", "backlog", "in_review")
SIDES = ("obverse", "reverse", "both", "unknown")
DECISIONS = ("auto_accept", "review", "possible_new_type")
JOB_STATES = ("running", "done", "failed", "interrupted")
ROLES = ("viewer", "reviewer", "admin")
# "record": a reviewer corrected or completed a specimen's measures (the comment says what)
# "link": a reviewer joined another specimen's photos to this one as its other side
# "reattribute": a catalogued coin given another type on purpose (the comment says why)
# "undo": an earlier action reversed (``Review.undoes_id``), its values restored
# "partial": the coarser levels a reviewer is sure of (``Specimen.attribution``), the exact
# type left in review
REVIEW_ACTIONS = (
    "accept",
    "correct",
    "new_type",
    "skip",
    "bulk_accept",
    "record",
    "link",
    "reattribute",
    "undo",
    "partial",
)
# What a catalogue type says beside its reference and URI, and what is measured on a specimen:
# the names of the columns in models, CSV manifests, the API and exports alike.
# The nomisma.org concepts (http://nomisma.org/id/...) of the named descriptors, which a Nomisma
# export links to: ``authority_uri`` is the authority's concept, and so on.
TYPE_CONCEPTS = ("authority_uri", "mint_uri", "denomination_uri", "material_uri")
TYPE_DESCRIPTORS = (
    "authority",
    "mint",
    "denomination",
    "date_from",
    "date_to",
    "material",
    *TYPE_CONCEPTS,
)
# The coarser levels of an attribution, widest last: what a coin can be attributed to while its
# exact type is uncertain (``coinlens.identify.partial``). "series" is the corpus and volume
# the type's reference or URI names (RIC VIII, RPC, RRC).
ATTRIBUTION_LEVELS = ("series", "authority", "mint", "denomination")
SPECIMEN_MEASURES = ("weight_g", "diameter_mm", "die_axis")

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


def _enum_check(column: str, values: tuple[str, ...]) -> CheckConstraint:
    allowed = ", ".join(f"'{value}'" for value in values)
    return CheckConstraint(f"{column} IN ({allowed})", name=f"{column}_allowed")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dict[str, Any]: JSON,
        datetime: DateTime(timezone=True),
    }


class CoinType(Base):
    """A catalogue entry such as "RRC 273/1" or, for modern coins, "2e"."""

    __tablename__ = "coin_type"

    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str] = mapped_column(String(255), unique=True)
    uri: Mapped[str | None] = mapped_column(String(1024))
    authority: Mapped[str | None] = mapped_column(String(255))
    mint: Mapped[str | None] = mapped_column(String(255))
    denomination: Mapped[str | None] = mapped_column(String(255))
    date_from: Mapped[int | None] = mapped_column(Integer)
    date_to: Mapped[int | None] = mapped_column(Integer)
    material: Mapped[str | None] = mapped_column(String(255))
    authority_uri: Mapped[str | None] = mapped_column(String(1024))
    mint_uri: Mapped[str | None] = mapped_column(String(1024))
    denomination_uri: Mapped[str | None] = mapped_column(String(1024))
    material_uri: Mapped[str | None] = mapped_column(String(1024))
    description: Mapped[str | None] = mapped_column(Text)
    # raised by every edit of the record: two curators editing one type cannot overwrite each other
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    specimens: Mapped[list[Specimen]] = relationship(
        back_populates="coin_type", foreign_keys="Specimen.type_id"
    )


NOTE_KEY = "note"  # the curator's own note among the notes (the rest: columns an import kept)


def split_notes(notes: str | None) -> tuple[str | None, dict[str, Any]]:
    """A specimen's ``notes`` column as (the curator's note, the other fields kept from import).

    The column holds a JSON object: what a manifest or a folder said that has no column of its
    own, and the note a curator writes under ``NOTE_KEY``; text that is not such an object is a
    note as it stands."""
    if not notes:
        return None, {}
    try:
        fields = json.loads(notes)
    except ValueError:
        return notes, {}
    if not isinstance(fields, dict):
        return notes, {}
    note = fields.pop(NOTE_KEY, None)
    return (str(note) if note not in (None, "") else None), fields


def join_notes(note: str | None, fields: dict[str, Any]) -> str | None:
    """The ``notes`` column holding ``note`` beside ``fields`` (``split_notes`` reversed)."""
    merged = dict(fields)
    if note:
        merged[NOTE_KEY] = note
    return json.dumps(merged, ensure_ascii=False, sort_keys=True) if merged else None


class Specimen(Base):
    """One physical coin, with what the museum knows about it."""

    __tablename__ = "specimen"
    __table_args__ = (
        _enum_check("status", SPECIMEN_STATUSES),
        Index("ix_specimen_queue", "status", "suggestion_score", "id"),
        Index("ix_specimen_queue_margin", "status", "suggestion_margin", "id"),
        Index("ix_specimen_queue_counts", "status", "batch", "decision"),
        Index("ix_specimen_status_accession", "status", "accession"),
        Index("ix_specimen_batch_accession", "batch", "accession"),
        Index("ix_specimen_type_status", "type_id", "status"),
        Index("ix_specimen_suggested_status", "suggested_type_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    accession: Mapped[str] = mapped_column(String(255), unique=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    type_id: Mapped[int | None] = mapped_column(ForeignKey("coin_type.id"), index=True)
    weight_g: Mapped[float | None] = mapped_column(Float)
    diameter_mm: Mapped[float | None] = mapped_column(Float)
    die_axis: Mapped[int | None] = mapped_column(Integer)
    notes: Mapped[str | None] = mapped_column(Text)
    batch: Mapped[str | None] = mapped_column(String(255), index=True)
    # A partial attribution a reviewer accepted while the exact type waits: {level: value} for
    # levels of ``ATTRIBUTION_LEVELS`` ("authority": "Constantine I", "mint": "Nicomedia")
    attribution: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # The newest suggestions in brief, kept by identify, so the review queue is one indexed query.
    suggested_type_id: Mapped[int | None] = mapped_column(ForeignKey("coin_type.id"), index=True)
    suggestion_score: Mapped[float | None] = mapped_column(Float)
    suggestion_margin: Mapped[float | None] = mapped_column(Float)
    decision: Mapped[str | None] = mapped_column(String(32))
    # Bumped by every change a reviewer makes: the optimistic check against lost updates.
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    coin_type: Mapped[CoinType | None] = relationship(
        back_populates="specimens", foreign_keys=[type_id]
    )
    images: Mapped[list[Image]] = relationship(
        back_populates="specimen", cascade="all, delete-orphan", order_by="Image.id"
    )


class Image(Base):
    """One photograph of a specimen (a side, both sides, or unknown), stored by content hash."""

    __tablename__ = "image"
    __table_args__ = (
        _enum_check("side", SIDES),
        UniqueConstraint("specimen_id", "side", "sha256"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    specimen_id: Mapped[int] = mapped_column(
        ForeignKey("specimen.id", ondelete="CASCADE"), index=True
    )
    side: Mapped[str] = mapped_column(String(16))
    key: Mapped[str] = mapped_column(String(512))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    thumbnail_key: Mapped[str | None] = mapped_column(String(512))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    format: Mapped[str | None] = mapped_column(String(16))
    source: Mapped[str | None] = mapped_column(Text)
    crop: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    specimen: Mapped[Specimen] = relationship(back_populates="images")


class AccessionAlias(Base):
    """The accession of a specimen merged into another (its photos linked as the other side of
    one coin): ingest and identify read the alias as the specimen it joined, so a re-run over
    the same folder or manifest never brings the merged specimen back."""

    __tablename__ = "accession_alias"

    id: Mapped[int] = mapped_column(primary_key=True)
    alias: Mapped[str] = mapped_column(String(255), unique=True)
    specimen_id: Mapped[int] = mapped_column(
        ForeignKey("specimen.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ModelVersion(Base):
    """A trained (or pretrained) model and what it was trained on."""

    __tablename__ = "model_version"

    id: Mapped[int] = mapped_column(primary_key=True)
    backbone: Mapped[str] = mapped_column(String(255))
    training_snapshot: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    artefacts: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Suggestion(Base):
    """A ranked type suggestion for a specimen from one model version."""

    __tablename__ = "suggestion"
    __table_args__ = (
        _enum_check("decision", DECISIONS),
        UniqueConstraint("specimen_id", "model_version_id", "rank"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    specimen_id: Mapped[int] = mapped_column(
        ForeignKey("specimen.id", ondelete="CASCADE"), index=True
    )
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_version.id"), index=True)
    rank: Mapped[int] = mapped_column(Integer)
    type_id: Mapped[int | None] = mapped_column(ForeignKey("coin_type.id"))
    score: Mapped[float] = mapped_column(Float)
    evidence: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    decision: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Review(Base):
    """One reviewer action on a specimen: the audit trail.

    What undo needs is kept with it: ``before`` and ``after``, the specimen's values the action
    replaced and wrote (an undo restores ``before`` only while ``after`` still stands, so a later
    change is never overwritten); ``version_after``, the specimen's version once it was applied;
    ``group_id``, the first review of a bulk accept (its reviews are undone together); and on an
    undo, ``undoes_id``, the review it reversed."""

    __tablename__ = "review"
    __table_args__ = (Index("ix_review_reviewer_recent", "reviewer", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    specimen_id: Mapped[int] = mapped_column(
        ForeignKey("specimen.id", ondelete="CASCADE"), index=True
    )
    reviewer: Mapped[str] = mapped_column(String(255))
    action: Mapped[str] = mapped_column(String(32))
    from_type_id: Mapped[int | None] = mapped_column(ForeignKey("coin_type.id"))
    to_type_id: Mapped[int | None] = mapped_column(ForeignKey("coin_type.id"))
    comment: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    version_after: Mapped[int | None] = mapped_column(Integer)
    group_id: Mapped[int | None] = mapped_column(Integer, index=True)
    undoes_id: Mapped[int | None] = mapped_column(ForeignKey("review.id"), index=True)


class QueueSkip(Base):
    """A coin a reviewer skipped: it waits behind the others in that reviewer's queue (an undo
    of the skip, or the coin leaving the queue, ends it)."""

    __tablename__ = "queue_skip"
    __table_args__ = (UniqueConstraint("reviewer", "specimen_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    reviewer: Mapped[str] = mapped_column(String(255))
    specimen_id: Mapped[int] = mapped_column(
        ForeignKey("specimen.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime] = mapped_column(default=utcnow)


class BatchCheck(Base):
    """What one model found of a batch's photography (``coinlens.identify.shift``), and the
    calibration refitted for the batch from its reviewed coins (None until there were enough).
    A shifted batch's auto-accept waits for an audit (``AuditSample``)."""

    __tablename__ = "batch_check"
    __table_args__ = (UniqueConstraint("batch", "model_version_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    batch: Mapped[str] = mapped_column(String(255), index=True)
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_version.id"), index=True)
    n: Mapped[int] = mapped_column(Integer, default=0)
    score: Mapped[float | None] = mapped_column(Float)
    threshold: Mapped[float | None] = mapped_column(Float)
    shifted: Mapped[bool] = mapped_column(default=False)
    shift: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # ``Shift.as_dict()``
    calibration: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    calibrated_on: Mapped[int] = mapped_column(Integer, default=0)  # reviewed coins it used
    # {specimen id: whether the refitted calibration auto-accepts it, matched without itself}:
    # the audited coins still judging the batch's auto-accept after it was matched again
    audit_scope: Mapped[dict[str, bool] | None] = mapped_column(JSON)
    checked_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class AuditSample(Base):
    """One coin drawn into a batch's audit: a random sample of the coins the model would
    auto-accept, reviewed like any coin. Its outcome is the first standing review of the coin
    after it was drawn (accepting the suggested type: right; any other type: wrong); a reviewer
    holds a drawn coin (``claimed_by``) while looking at it, so two never review the same one."""

    __tablename__ = "audit_sample"
    __table_args__ = (UniqueConstraint("batch", "specimen_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    batch: Mapped[str] = mapped_column(String(255), index=True)
    specimen_id: Mapped[int] = mapped_column(
        ForeignKey("specimen.id", ondelete="CASCADE"), index=True
    )
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_version.id"))
    suggested_type_id: Mapped[int | None] = mapped_column(ForeignKey("coin_type.id"))
    # "bound": drawn at random from the candidates, counted in the audit's bound; "teach":
    # chosen where a review teaches the batch's calibration most, not counted in the bound
    purpose: Mapped[str] = mapped_column(String(16), default="bound", server_default="bound")
    drawn_by: Mapped[str] = mapped_column(String(255))
    drawn_at: Mapped[datetime] = mapped_column(default=utcnow)
    claimed_by: Mapped[str | None] = mapped_column(String(255))
    claimed_at: Mapped[datetime | None] = mapped_column()


class TypeEdit(Base):
    """One edit of a type's record by a curator: the audit trail of the catalogue's entries.
    ``changes`` maps each field changed to its [old, new] values."""

    __tablename__ = "type_edit"

    id: Mapped[int] = mapped_column(primary_key=True)
    type_id: Mapped[int] = mapped_column(ForeignKey("coin_type.id", ondelete="CASCADE"), index=True)
    reviewer: Mapped[str] = mapped_column(String(255))
    changes: Mapped[dict[str, Any]] = mapped_column(JSON)
    at: Mapped[datetime] = mapped_column(default=utcnow)


class Job(Base):
    """A batch run with progress counters, so an interrupted run can be resumed and audited."""

    __tablename__ = "job"
    __table_args__ = (
        _enum_check("state", JOB_STATES),
        Index("ix_job_kind_target", "kind", "target"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    target: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), default="running")
    params: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    total: Mapped[int] = mapped_column(Integer, default=0)
    done: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[int] = mapped_column(Integer, default=0)
    message: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column()


class User(Base):
    """Someone who signs in to review: a role and a password hash (argon2), never the password."""

    __tablename__ = "user_account"
    __table_args__ = (_enum_check("role", ROLES),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiToken(Base):
    """A bearer token for /api/v1; only its sha256 is kept."""

    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column()
    last_used_at: Mapped[datetime | None] = mapped_column()

    user: Mapped[User] = relationship()


class WebSession(Base):
    """A signed-in browser: the cookie holds a random id whose sha256 is kept here, with the
    form token that guards every POST (CSRF) and when the session ends."""

    __tablename__ = "web_session"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    session_hash: Mapped[str] = mapped_column(String(64), unique=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()

    user: Mapped[User] = relationship()
