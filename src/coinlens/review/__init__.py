"""Human review: the queue of what most needs a curator, and the actions that settle a coin."""

from coinlens.review.actions import (
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
    TYPE_RECORD_FIELDS,
    TypeNotFound,
    describe_changes,
    record_measures,
    record_type,
    type_history,
)
from coinlens.review.sides import link_sides

__all__ = [
    "TYPE_RECORD_FIELDS",
    "QueueFilter",
    "QueuePage",
    "ReviewConflict",
    "ReviewError",
    "SpecimenNotFound",
    "TypeNotFound",
    "bulk_accept",
    "bulk_accept_candidates",
    "describe_changes",
    "history",
    "link_sides",
    "queue_counts",
    "queue_page",
    "record_measures",
    "record_type",
    "review_specimen",
    "type_history",
]
