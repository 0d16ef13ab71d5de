"""Acceptance sampling: how sure a reviewed random sample makes us of a batch's precision.

A batch whose photography differs from the calibration coins earns auto-accept through an
audit: a random sample of the coins the model would auto-accept, reviewed. If ``right`` of the
``reviewed`` were right, the one-sided 95% Clopper-Pearson lower bound is the least precision
that still makes so many right at least 5% likely; auto-accept is allowed where it reaches the
collection's ``auto_accept_precision`` minus ``audit_tolerance``.
"""

from __future__ import annotations

from dataclasses import dataclass

from scipy.stats import beta

CONFIDENCE = 0.95
MAX_MORE = 10_000  # more reviews than this are never "what would settle it"


def lower_bound(right: int, reviewed: int, confidence: float = CONFIDENCE) -> float:
    """The one-sided Clopper-Pearson lower bound on a precision seen as ``right``/``reviewed``
    (0 with nothing reviewed or nothing right)."""
    if reviewed <= 0 or right <= 0:
        return 0.0
    return float(beta.ppf(1 - confidence, right, reviewed - right + 1))


@dataclass(frozen=True)
class AuditVerdict:
    reviewed: int
    wrong: int
    precision: float | None
    lower_bound: float
    required: float
    allowed: bool
    more_needed: int | None  # coins still to review, all right, before it is allowed

    def sentence(self) -> str:
        if not self.reviewed:
            return (
                f"nothing reviewed yet: auto-accept needs a 95% lower bound of {self.required:.2f}"
            )
        seen = (
            f"{self.reviewed - self.wrong} of {self.reviewed} right (95% lower bound "
            f"{self.lower_bound:.3f}, needed {self.required:.3f})"
        )
        if self.allowed:
            return f"{seen}: auto-accept allowed"
        if self.more_needed is None:
            return f"{seen}: no number of further reviews would settle it"
        return (
            f"{seen}: {self.more_needed} more coin{'s' if self.more_needed != 1 else ''} "
            "reviewed right would settle it"
        )


def verdict(reviewed: int, wrong: int, required: float) -> AuditVerdict:
    """The audit's state after ``reviewed`` coins, ``wrong`` of them wrong, for a lower bound
    of ``required``; ``more_needed``: the fewest further coins, all right, that would allow it."""
    right = reviewed - wrong
    bound = lower_bound(right, reviewed)
    allowed = reviewed > 0 and bound >= required
    more = None
    if not allowed:
        low, high = 1, 1
        while high <= MAX_MORE and lower_bound(right + high, reviewed + high) < required:
            low, high = high + 1, high * 2
        if high <= MAX_MORE or lower_bound(right + MAX_MORE, reviewed + MAX_MORE) >= required:
            high = min(high, MAX_MORE)
            while low < high:  # the least m with the bound reached
                middle = (low + high) // 2
                if lower_bound(right + middle, reviewed + middle) >= required:
                    high = middle
                else:
                    low = middle + 1
            more = low
    return AuditVerdict(
        reviewed=reviewed,
        wrong=wrong,
        precision=right / reviewed if reviewed else None,
        lower_bound=bound,
        required=required,
        allowed=allowed,
        more_needed=more,
    )
