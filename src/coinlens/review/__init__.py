"""Human review: the queue of what most needs a curator, and the actions that settle a coin."""

from coinlens.review.actions import (
    AuditRequired,
    BulkAccepted,
    CataloguedCoin,
    ReviewConflict,
    ReviewError,
    SpecimenNotFound,
    bulk_accept,
    bulk_accept_candidates,
    history,
    review_specimen,
)
from coinlens.review.queue import QueueFilter, QueuePage, queue_counts, queue_page
from coinlens.review.records import (
    SPECIMEN_RECORD_FIELDS,
    TYPE_RECORD_FIELDS,
    RecordRefused,
    TypeNotFound,
    describe_changes,
    record_measures,
    record_type,
    type_history,
)
from coinlens.review.sides import link_sides
from coinlens.review.undo import ReviewNotFound, recent_reviews, review_summary, undo_review

__all__ = [
    "SPECIMEN_RECORD_FIELDS",
    "TYPE_RECORD_FIELDS",
    "AuditRequired",
    "BulkAccepted",
    "CataloguedCoin",
    "QueueFilter",
    "QueuePage",
    "RecordRefused",
    "ReviewConflict",
    "ReviewError",
    "ReviewNotFound",
    "SpecimenNotFound",
    "TypeNotFound",
    "bulk_accept",
    "bulk_accept_candidates",
    "describe_changes",
    "history",
    "link_sides",
    "queue_counts",
    "queue_page",
    "recent_reviews",
    "record_measures",
    "record_type",
    "review_specimen",
    "review_summary",
    "type_history",
    "undo_review",
]
