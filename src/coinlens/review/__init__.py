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

__all__ = [
    "QueueFilter",
    "QueuePage",
    "ReviewConflict",
    "ReviewError",
    "SpecimenNotFound",
    "bulk_accept",
    "bulk_accept_candidates",
    "history",
    "queue_counts",
    "queue_page",
    "review_specimen",
]
