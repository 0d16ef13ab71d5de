"""From neighbours to decisions: type scores, calibrated confidence, auto-accept and novelty.

Type scores from the nearest references, adjusted by physical cues and keypoint verification
where calibration chose them, become a calibrated confidence (softmax, certainty, isotonic map)
and a decision. Each step and why: docs/how-it-works/pipeline.md, "From neighbours to a
decision".
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import NamedTuple

import numpy as np

from coinlens.vision.cues import (
    HUE_FEATURE,
    SIZE_FEATURE,
    TWO_TONE_FEATURE,
    cue_features,
    hue_difference,
)

# Smallest spread a type's cue feature may have: measurement noise (diameter share, hue degrees,
# two-tone gap in chroma units).
CUE_SPREAD_FLOOR = np.array([0.02, 4.0, 2.0], dtype=np.float32)
CUE_MIN_REFERENCES = 3  # references with a measured cue before a type's cue counts
CUE_Z2_CAP = 25.0  # one odd measurement cannot outweigh the design
SIZE_SCALE_MIN = 0.02  # diameter share: candidates' medians all closer than this carry no scale


# Fitted before the temperature, on how types are scored (``fit_calibration`` keeps them)
SCORING_FIELDS = (
    "type_depth",
    "size_weight",
    "colour_weight",
    "two_tone_weight",
    "verify_weight",
    "similarity_weight",
)


@dataclass
class Calibration:
    """Everything fitted on held-out coins; stored in ModelVersion.metrics["calibration"]."""

    temperature: float = 0.05
    size_weight: float = 0.0  # per unit of squared robust z-score of the apparent diameter
    colour_weight: float = 0.0  # per unit of squared robust z-score of the metal's hue
    two_tone_weight: float = 0.0  # the same for the ring-minus-core chroma (bimetallic coins)
    verify_weight: float = 0.5  # similarity keypoint verification adds at most; 0: not run
    type_depth: int = 1  # nearest references a type's score averages (``image_type_scores``)
    similarity_weight: float = 0.0  # log-odds per unit of plain similarity in a certainty
    iso_x: list[float] = field(default_factory=lambda: [0.0, 1.0])
    iso_y: list[float] = field(default_factory=lambda: [0.0, 1.0])
    iso_space: str = "probability"  # iso_x: "log_odds" (new fits: certainty) or "probability"
    accept_threshold: float = 1.01  # never, until fitted
    target_precision: float = 0.98
    novelty_similarity: float = 0.0
    familiar_similarity: float = 0.0  # auto-accept only coins at least this close (0: any)
    # per type id: a higher floor than ``familiar_similarity`` where coins of types the
    # catalogue lacks are drawn to it (``fit_type_floors``); fitted for ``new_type_share``
    type_floors: dict[int, float] = field(default_factory=dict)
    new_type_share: float = 0.0
    n_heldout: int = 0
    heldout_top1: float | None = None
    heldout_precision_at_threshold: float | None = None
    heldout_coverage_at_threshold: float | None = None
    # of held-out coins matched as if the catalogue lacked their type, the share auto-accepted
    heldout_as_new_accepted: float | None = None
    # the held-out coins the map was fitted on (a sample): a batch's reviewed coins are pooled
    # with them to refit it for that batch (``recalibrate_for_batch``)
    heldout_certainty: list[float] = field(default_factory=list)
    heldout_correct: list[int] = field(default_factory=list)
    heldout_similarity: list[float] = field(default_factory=list)
    # the held-out coins' signals (``coinlens.identify.shift.profile``): what a batch's
    # photography is compared with
    shift_profile: dict[str, list] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # JSON gives the type ids back as strings
        self.type_floors = {int(t): float(f) for t, f in self.type_floors.items()}

    def as_dict(self) -> dict:
        return asdict(self)

    def floor(self, type_id: int) -> float:
        """The similarity a coin suggested as ``type_id`` needs to be auto-accepted."""
        return self.type_floors.get(type_id, self.familiar_similarity)  # never below it

    @classmethod
    def from_dict(cls, data: dict | None) -> Calibration:
        if not data:
            return cls()
        known = {name for name in cls.__dataclass_fields__}
        return cls(**{key: value for key, value in data.items() if key in known})

    @property
    def weighs_cues(self) -> bool:
        """Whether any physical cue counts in the scores."""
        return bool(self.size_weight or self.colour_weight or self.two_tone_weight)

    def certainty(self, log_odds: np.ndarray | float, similarity: np.ndarray | float) -> np.ndarray:
        """What confidence is a monotone map of: the log-odds, plus ``similarity_weight`` times
        the plain similarity of the coin's top type (0 in calibrations fitted before it existed:
        the log-odds alone)."""
        return np.asarray(log_odds) + self.similarity_weight * np.asarray(similarity)

    def confidence(self, certainty: np.ndarray | float) -> np.ndarray:
        """A suggestion's certainty -> calibrated confidence (monotone)."""
        if self.iso_space == "probability":  # fitted before log-odds existed
            return np.interp(1.0 / (1.0 + np.exp(-np.asarray(certainty))), self.iso_x, self.iso_y)
        return np.interp(certainty, self.iso_x, self.iso_y)


@dataclass
class Suggestion:
    """One ranked type for a specimen."""

    type_id: int
    score: float  # calibrated confidence
    similarity: float  # best cosine similarity to a reference of this type
    evidence: list[int]  # reference image ids, best first
    probability: float = 0.0  # softmax probability before the isotonic map
    log_odds: float = 0.0  # log p / (1 - p), unrounded: orders confident coins among themselves
    certainty: float = 0.0  # what ``score`` maps (``Calibration.certainty``): orders coins


TYPE_DEPTHS = (1, 3, 5)  # how many nearest references a type's score may average (fitted)


def image_type_scores(
    similarities: np.ndarray,
    image_ids: np.ndarray,
    type_of: dict[int, int],
    per_type: int = 3,
    depth: int = 1,
    available: Mapping[int, int] | None = None,
) -> tuple[dict[int, float], dict[int, list[int]], float]:
    """Per type among one image's neighbours: the mean similarity of its ``depth`` nearest
    references, those beyond the neighbours counted at the last similarity (a bound); the
    evidence (``per_type`` best references); and that floor.

    With ``depth`` > 1 one lookalike of another type outweighs less than a type's several close
    references (``Calibration.type_depth``, fitted: euro-kaa 5, top-1 0.912 -> 0.927 with the
    same model; cash coins, a few pictures per type, 1). A type with fewer references than
    ``depth`` (``available[type]``: those it has that may count) averages over those it has,
    so a type known from one coin competes on that coin alone."""
    found: dict[int, list[float]] = {}
    evidence: dict[int, list[int]] = {}
    valid = image_ids >= 0
    for similarity, image_id in zip(similarities[valid], image_ids[valid], strict=True):
        type_id = type_of[int(image_id)]
        found.setdefault(type_id, []).append(float(similarity))
        if len(evidence.setdefault(type_id, [])) < per_type:
            evidence[type_id].append(int(image_id))
    floor = float(similarities[valid][-1]) if valid.any() else 0.0
    scores = {}
    for type_id, values in found.items():
        count = max(1, min(depth, (available or {}).get(type_id, depth)))
        nearest = values[:count]
        scores[type_id] = (sum(nearest) + floor * (count - len(nearest))) / count
    return scores, evidence, floor


def combine_images(
    per_image: list[tuple[dict[int, float], dict[int, list[int]], float]],
) -> tuple[dict[int, float], dict[int, list[int]]]:
    """Average the type scores of a specimen's images (sides); evidence interleaved."""
    types = {type_id for scores, _, _ in per_image for type_id in scores}
    combined = {
        type_id: float(np.mean([scores.get(type_id, floor) for scores, _, floor in per_image]))
        for type_id in types
    }
    evidence: dict[int, list[int]] = {}
    for type_id in types:
        merged = [image_id for _, ev, _ in per_image for image_id in ev.get(type_id, [])]
        evidence[type_id] = list(dict.fromkeys(merged))
    return combined, evidence


@dataclass
class CueStats:
    """Per type: median and robust spread (scaled MAD, floored) of its references' cue features
    (``coinlens.vision.cues.cue_features``: diameter share, metal hue)."""

    median: dict[int, np.ndarray]
    spread: dict[int, np.ndarray]

    @classmethod
    def from_references(cls, cues: np.ndarray, types: np.ndarray) -> CueStats:
        features = cue_features(cues) if len(cues) else np.zeros((0, len(CUE_SPREAD_FLOOR)))
        median, spread = {}, {}
        for type_id in np.unique(types):
            values = features[types == type_id]
            enough = (~np.isnan(values)).sum(axis=0) >= CUE_MIN_REFERENCES
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns
                middle = np.nanmedian(values, axis=0)
                deviation = _deviations(values, middle)
                mad = 1.4826 * np.nanmedian(np.abs(deviation), axis=0)
            median[int(type_id)] = np.where(enough, middle, np.nan)
            spread[int(type_id)] = np.maximum(np.nan_to_num(mad), CUE_SPREAD_FLOOR)
        return cls(median, spread)

    def adjustments(
        self, query: np.ndarray, type_ids: list[int], calibration: Calibration
    ) -> dict[int, float]:
        """What to add to each candidate type's score for a coin with cues ``query``.

        A cue counts only if the coin has it and every candidate type's references do, so that
        a type photographed differently is not favoured for lacking the cue. The size counts
        only where the candidates' median sizes differ by ``SIZE_SCALE_MIN`` or more: references
        cut to the coin's edge (a studio's, every denomination filling its frame alike) carry no
        scale, and their spreads alone would rank the types (euro-studio references for kaa
        queries: top-1 0.851 -> 0.865 and 0.714 -> 0.778 for two trainings, kaa unchanged)."""
        out = dict.fromkeys(type_ids, 0.0)
        features = cue_features(query)[0]
        for dim, weight in (
            (SIZE_FEATURE, calibration.size_weight),
            (HUE_FEATURE, calibration.colour_weight),
            (TWO_TONE_FEATURE, calibration.two_tone_weight),
        ):
            if weight <= 0 or np.isnan(features[dim]):
                continue
            medians = [self.median.get(t) for t in type_ids]
            if any(m is None or np.isnan(m[dim]) for m in medians):
                continue
            if dim == SIZE_FEATURE and np.ptp([m[dim] for m in medians]) < SIZE_SCALE_MIN:
                continue
            for type_id, middle in zip(type_ids, medians, strict=True):
                deviation = _deviations(features[None], middle)[0, dim]
                z2 = float((deviation / self.spread[type_id][dim]) ** 2)
                out[type_id] -= weight * 0.5 * min(z2, CUE_Z2_CAP)
        return out


def _deviations(features: np.ndarray, middle: np.ndarray) -> np.ndarray:
    """Features minus ``middle``, the hue as the shorter way round the colour circle."""
    deviation = features - middle
    deviation[:, HUE_FEATURE] = hue_difference(features[:, HUE_FEATURE], middle[HUE_FEATURE])
    return deviation


LOG_ODDS_CAP = 60.0  # a type alone among its candidates


def log_odds(values: np.ndarray, temperature: float) -> np.ndarray:
    """log p_i / (1 - p_i) of each softmax probability, stable when p_i rounds to 1."""
    scaled = np.asarray(values, dtype=np.float64) / max(temperature, 1e-6)
    out = np.full(len(scaled), LOG_ODDS_CAP)
    for i in range(len(scaled)):
        others = np.delete(scaled, i)
        if len(others):
            top = others.max()
            rest = top + np.log(np.exp(others - top).sum())  # logsumexp of the others
            out[i] = min(LOG_ODDS_CAP, scaled[i] - rest)
    return out


def softmax(values: np.ndarray, temperature: float) -> np.ndarray:
    scaled = (values - values.max()) / max(temperature, 1e-6)
    exp = np.exp(scaled)
    return exp / exp.sum()


def rank(
    scores: dict[int, float],
    evidence: dict[int, list[int]],
    calibration: Calibration,
    top_k: int,
    similarities: dict[int, float] | None = None,
) -> list[Suggestion]:
    """Types best first with calibrated confidences. ``scores`` order them; ``similarities``
    (default: the scores) are the plain embedding similarities kept for novelty."""
    if not scores:
        return []
    similarities = similarities or scores
    type_ids = np.array(list(scores))
    values = np.array([scores[t] for t in type_ids])
    probabilities = softmax(values, calibration.temperature)
    odds = log_odds(values, calibration.temperature)
    ranked = np.argsort(-values, kind="stable")
    order = ranked[:top_k]
    plain = np.array([similarities[int(type_ids[i])] for i in order])
    # how close the coin comes to the references is the coin's, not each type's: the top type's
    # similarity counts in every suggestion's certainty
    certainties = calibration.certainty(odds[order], plain[0])
    top_confidence = float(calibration.confidence(certainties[0]))
    confidences = ranked_confidences(top_confidence, values[ranked], calibration.temperature)[
        :top_k
    ]
    return [
        Suggestion(
            int(type_ids[i]),
            float(c),
            float(similarity),
            evidence[int(type_ids[i])],
            float(probabilities[i]),
            float(odds[i]),
            float(certainty),
        )
        for i, c, similarity, certainty in zip(order, confidences, plain, certainties, strict=True)
    ]


def ranked_confidences(top_confidence: float, values: np.ndarray, temperature: float) -> np.ndarray:
    """Confidences of a coin's types ranked by ``values`` (best first): the top type's calibrated
    one, then each runner-up's share of the rest (1 - top), split as the softmax splits it among
    all the types below the top, and never above the type ranked before it.

    The isotonic map is fitted on top suggestions: through it, a runner-up's certainty (which
    carries the coin's similarity) read 0.5-0.9 where 4-6% of such runner-ups were right (euro-kaa
    test). The cap keeps the list in order where the top is unsure because the coin is unlike
    every reference: part of the rest then belongs to no catalogued type at all.
    """
    if len(values) < 2:
        return np.array([top_confidence])
    scaled = (values[1:] - values[1:].max()) / max(temperature, 1e-6)
    shares = np.exp(scaled) / np.exp(scaled).sum()
    return np.minimum.accumulate(np.r_[top_confidence, (1.0 - top_confidence) * shares])


def confidence_text(score: float, places: int = 2) -> str:
    """``places`` decimals, or as many more (up to six) as keep a score below 1 from reading
    "1.00": a coin shown 1.00 and sent to review reads as a contradiction."""
    for shown in range(places, 7):
        text = f"{score:.{shown}f}"
        if float(text) < 1.0 or score >= 1.0:
            break
    return text


def confidence_meaning(score: float) -> str:
    """What a calibrated confidence says, in words: of the coins held out from training that
    were given it, about that share were of the suggested type."""
    share = round(score * 100)
    if score >= 0.995:
        return "nearly all held-out coins given this confidence were of the suggested type"
    if share < 1:
        return "held-out coins given this confidence were nearly never of the suggested type"
    return f"about {share} in 100 held-out coins given this confidence were of the suggested type"


def _apart(value: float, bound: float) -> tuple[str, str]:
    """Two numbers printed with enough decimals (3 to 6) that they do not read as equal."""
    for places in range(3, 7):
        shown = f"{value:.{places}f}", f"{bound:.{places}f}"
        if shown[0] != shown[1]:
            break
    return shown


def explain(suggestions: Sequence[Suggestion], calibration: Calibration) -> tuple[str, str]:
    """The decision and why, in a sentence for the reviewer: ``possible_new_type`` below the
    novelty floor; ``auto_accept`` at or above the threshold for a coin as close to its
    references as nearly all held-out coins identified right (``familiar_similarity``), or
    closer where its type draws coins of types the catalogue lacks (``Calibration.floor``);
    else ``review``."""
    if not suggestions:
        return "possible_new_type", "no reference to compare it with"
    top = suggestions[0]
    similarity, confidence = top.similarity, top.score
    if similarity < calibration.novelty_similarity:
        shown, bound = _apart(similarity, calibration.novelty_similarity)
        return "possible_new_type", (
            f"similarity {shown} to the nearest references, below the {bound} that "
            f"{1 - NOVELTY_QUANTILE:.0%} of the held-out coins identified right reach: possibly "
            "a type not in the catalogue"
        )
    if confidence < calibration.accept_threshold:
        shown, bound = _apart(confidence, min(calibration.accept_threshold, 1.0))
        return "review", f"confidence {shown}, below the auto-accept threshold {bound}"
    floor = calibration.floor(top.type_id)
    if similarity < floor:
        why = (
            "held-out coins of other types, matched as if their own type were missing, were "
            "drawn to this type"
            if top.type_id in calibration.type_floors
            else f"{1 - FAMILIAR_QUANTILE:.0%} of the held-out coins identified right reach it"
        )
        shown, bound = _apart(similarity, floor)
        return "review", (
            f"confident, but similarity {shown} to the nearest references is below {bound}, "
            f"which a coin needs to be auto-accepted as this type: {why}"
        )
    return "auto_accept", (
        f"confidence {confidence:.3f}, at or above the threshold "
        f"{calibration.accept_threshold:.3f} (for {calibration.target_precision:.0%} precision), "
        f"and similarity {similarity:.3f}, at or above {floor:.3f}"
    )


def decide(suggestions: Sequence[Suggestion], calibration: Calibration) -> str:
    """``possible_new_type``, ``auto_accept`` or ``review`` (``explain`` says why)."""
    return explain(suggestions, calibration)[0]


# Weight, in coins, of the prior each step of the isotonic map is shrunk towards: the held-out
# coins' share right (the m-estimate of Zadrozny & Elkan, 2001). A step of a few held-out coins,
# all wrong, otherwise showed 0.00 to every coin below it, and on new trays and photographers
# such coins were right 33-80% of the time. With one coin's weight the top suggestions'
# calibration error fell on kaa test, euro-studio references and new types for three trainings
# each, and the share auto-accepted stayed; two coins' weight cost 1 to 3.5 points of that share
# (``bench/results/eval/calibration-2026-11-30/``).
ISOTONIC_PRIOR_COINS = 1.0


def _pool_adjacent(
    values: np.ndarray, weights: np.ndarray, low: np.ndarray, high: np.ndarray
) -> list[list[float]]:
    """Pool-adjacent-violators over points sorted by x (each spanning ``low``..``high``):
    blocks [weighted sum, weight, lowest x, highest x] with non-decreasing means."""
    blocks: list[list[float]] = []
    for value, weight, lo, hi in zip(values, weights, low, high, strict=True):
        blocks.append([value * weight, weight, lo, hi])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] >= blocks[-1][0] / blocks[-1][1]:
            total, weight_sum, _, top = blocks.pop()
            blocks[-1][0] += total
            blocks[-1][1] += weight_sum
            blocks[-1][3] = top
    return blocks


def _pav(
    x: np.ndarray,
    y: np.ndarray,
    lower: float = -LOG_ODDS_CAP,
    upper: float = LOG_ODDS_CAP,
    prior_coins: float = ISOTONIC_PRIOR_COINS,
    weights: np.ndarray | None = None,
) -> tuple[list[float], list[float]]:
    """Isotonic (non-decreasing) regression of y on x by pool-adjacent-violators, each step
    shrunk towards the (weighted) mean of y by ``prior_coins`` (then pooled again where that
    broke the order), as knots from ``lower`` to ``upper``: flat beyond the data at both ends,
    since nothing was seen there to say more. ``weights``: each point's, in coins (default 1)."""
    order = np.argsort(x, kind="stable")
    xs, ys = np.asarray(x, dtype=float)[order], np.asarray(y, dtype=float)[order]
    ws = np.ones_like(ys) if weights is None else np.asarray(weights, dtype=float)[order]
    steps = _pool_adjacent(ys, ws, xs, xs)
    prior = float(np.average(ys, weights=ws))
    sums, counts = np.array([b[0] for b in steps]), np.array([b[1] for b in steps])
    shrunk = (sums + prior_coins * prior) / (counts + prior_coins)
    steps = _pool_adjacent(
        shrunk,
        counts + prior_coins,
        np.array([b[2] for b in steps]),
        np.array([b[3] for b in steps]),
    )
    knots_x, knots_y = [lower], [steps[0][0] / steps[0][1]]
    for total, weight, lo, hi in steps:
        knots_x += [float(lo), float(hi)]
        knots_y += [total / weight] * 2
    knots_x.append(upper)
    knots_y.append(knots_y[-1])
    # np.interp needs increasing x: nudge equal knots apart
    for i in range(1, len(knots_x)):
        if knots_x[i] <= knots_x[i - 1]:
            knots_x[i] = knots_x[i - 1] + 1e-9
    return knots_x, [float(v) for v in knots_y]


def _score_table(
    candidate_scores: list[dict[int, float]], true_types: list[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Coins' candidate scores as one (coins, most candidates) array padded with -inf, and each
    coin's true type's column (-1 where it is no candidate): every temperature tried reads it."""
    width = max((len(scores) for scores in candidate_scores), default=0)
    table = np.full((len(candidate_scores), max(width, 1)), -np.inf)
    column = np.full(len(candidate_scores), -1)
    for i, (scores, truth) in enumerate(zip(candidate_scores, true_types, strict=True)):
        table[i, : len(scores)] = list(scores.values())
        if truth in scores:
            column[i] = list(scores).index(truth)
    return table, column


def _table_log_losses(table: np.ndarray, column: np.ndarray, temperature: float) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        scaled = (table - table.max(axis=1, keepdims=True)) / max(temperature, 1e-6)
        probabilities = np.exp(scaled) / np.exp(scaled).sum(axis=1, keepdims=True)
    rows = np.arange(len(table))
    p_true = np.where(column >= 0, probabilities[rows, np.maximum(column, 0)], 1e-6)
    return -np.log(np.maximum(np.nan_to_num(p_true, nan=1e-6), 1e-6))


def coin_log_losses(
    candidate_scores: list[dict[int, float]], true_types: list[int], temperature: float
) -> np.ndarray:
    """-log softmax probability of each coin's true type (1e-6 where it is no candidate)."""
    return _table_log_losses(*_score_table(candidate_scores, true_types), temperature)


TEMPERATURES = np.geomspace(0.005, 0.5, 60)


def fit_temperature(
    candidate_scores: list[dict[int, float]], true_types: list[int]
) -> tuple[float, float]:
    """(temperature, its negative log-likelihood): the best of a grid."""
    if not true_types:
        return float(TEMPERATURES[0]), 0.0
    table, column = _score_table(candidate_scores, true_types)
    fits = [
        (float(t), float(_table_log_losses(table, column, float(t)).mean())) for t in TEMPERATURES
    ]
    return min(fits, key=lambda fit: fit[1])


def best_types(
    candidate_scores: Sequence[Mapping[int, float]], temperature: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per coin: its best type as ``rank`` puts it first (-1 for a coin with no candidate), that
    type's log-odds at ``temperature`` (-inf) and its score (nan)."""
    type_ids, odds, best_scores = [], [], []
    for scores in candidate_scores:
        if not scores:
            type_ids.append(-1)
            odds.append(-np.inf)
            best_scores.append(np.nan)
            continue
        values = np.array(list(scores.values()))
        best = int(np.argmax(values))
        type_ids.append(list(scores)[best])
        odds.append(float(log_odds(values, temperature)[best]))
        best_scores.append(float(values[best]))
    return np.array(type_ids, dtype=np.int64), np.array(odds), np.array(best_scores)


def top_log_odds(
    candidate_scores: list[dict[int, float]], true_types: list[int], temperature: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per coin: the log-odds of its best type at ``temperature``, whether that type is the
    true one, and its score."""
    type_ids, odds, best_scores = best_types(candidate_scores, temperature)
    return odds, type_ids == np.asarray(true_types, dtype=np.int64), best_scores


def ranking_auc(values: np.ndarray, correct: np.ndarray) -> float:
    """How often a right answer outranks a wrong one by ``values`` (ties half): the area under
    the ROC curve, 0.5 where either kind is missing."""
    values, correct = np.asarray(values), np.asarray(correct, dtype=bool)
    right, wrong = np.sort(values[correct]), values[~correct]
    if not len(right) or not len(wrong):
        return 0.5
    below_or_equal = np.searchsorted(right, wrong, side="right")
    equal = below_or_equal - np.searchsorted(right, wrong, side="left")
    above = len(right) - below_or_equal
    return float((above + 0.5 * equal).sum() / (len(right) * len(wrong)))


SIMILARITY_WEIGHTS = (0.0, 5.0, 10.0, 20.0, 40.0, 80.0)
# The weight kept unless held-out coins clearly prefer another, measured where held-out coins
# cannot show it, on new trays and photographers: kaa test coverage at 98% precision with
# weight 0 / 20 / 40 / 80: 0.750 / 0.825 / 0.839 / 0.828 (0.639 / 0.763 / 0.848 / 0.838 for a
# model trained with three proxies per type); euro-studio references 0.363 / 0.532 / 0.497 / 0.388.
# Since models embed with the trunk's features (``CoinNet.drop_head``) similarities spread several
# times wider (the demo's novelty floor 0.976 -> 0.690), and 40 let them outweigh the softmax;
# coverage at 98% with weight 10 / 40, three kaa trainings: 0.952 / 0.943, 0.884 / 0.879,
# 0.882 / 0.854; euro-studio references 0.766 / 0.703; the demo's backlog 0.729 / 0.477.
SIMILARITY_PRIOR = 10.0
BOOTSTRAP_RESAMPLES = 200
# How many standard errors another weight's lead must exceed to replace the prior.
SIMILARITY_EVIDENCE = 2.0


def fit_similarity_weight(
    result_sets: list[tuple[list[dict[int, float]], list[float]]],
    true_types: list[int],
    temperature: float,
) -> float:
    """The weight of the plain similarity in a suggestion's certainty (``Calibration.certainty``).

    ``result_sets``: (type scores, top plain similarities) of the same held-out coins, as
    photographed and, where given, re-lit. On a new tray the coins the softmax gets wrong are
    often those far from every reference, but held-out coins share the references' trays: their
    similarities hardly vary, and their few wrong answers rank the weights by chance (two kaa
    models differing only in their loss's proxies per type picked 40 and 0; both do best at 40
    on the test trays). So ``SIMILARITY_PRIOR`` stands unless another weight ranks right
    answers above wrong ones (``ranking_auc``, pooled over the sets) better by more than
    ``SIMILARITY_EVIDENCE`` standard errors of the difference over coins resampled with
    replacement (with one, a 192 px kaa model's 195 held-out coins picked 0, and coverage at
    98% precision on the test trays fell from 0.881 to 0.693).
    """
    odds, correct, similarity = [], [], []
    for candidate_scores, top_similarities in result_sets:
        top_odds, right, _ = top_log_odds(candidate_scores, true_types, temperature)
        odds.append(top_odds)
        correct.append(right)
        similarity.append(np.asarray(top_similarities, dtype=np.float64))
    if not odds:
        return SIMILARITY_PRIOR
    pooled_odds, pooled_correct = np.concatenate(odds), np.concatenate(correct)
    pooled_similarity = np.concatenate(similarity)

    def aucs(rows: np.ndarray | slice) -> np.ndarray:
        return np.array(
            [
                ranking_auc(pooled_odds[rows] + w * pooled_similarity[rows], pooled_correct[rows])
                for w in SIMILARITY_WEIGHTS
            ]
        )

    measured = aucs(slice(None))
    best, prior = int(measured.argmax()), SIMILARITY_WEIGHTS.index(SIMILARITY_PRIOR)
    if best == prior:
        return SIMILARITY_PRIOR
    coins = len(true_types)
    rng = np.random.default_rng(0)
    differences = []
    for _ in range(BOOTSTRAP_RESAMPLES):
        drawn = rng.integers(0, coins, coins)
        rows = (drawn[None, :] + coins * np.arange(len(odds))[:, None]).ravel()
        resampled = aucs(rows)
        differences.append(resampled[best] - resampled[prior])
    if measured[best] - measured[prior] > SIMILARITY_EVIDENCE * np.std(differences):
        return SIMILARITY_WEIGHTS[best]
    return SIMILARITY_PRIOR


# Of the held-out coins identified right, the share less similar to their references than a coin
# must be: to be kept from ``possible_new_type``, and to be auto-accepted. A coin of a series the
# catalogue lacks can still have one type dominate its neighbours (Chinese cash coins against a
# euro catalogue, kaa model: 24.7% auto-accepted without the familiarity floor); it is rarely as
# close to them as the catalogued coins are.
NOVELTY_QUANTILE = 0.01
FAMILIAR_QUANTILE = 0.05


class TopSuggestions(NamedTuple):
    """The top suggestion of each of some coins: what deciding on them needs."""

    type_ids: np.ndarray
    similarities: np.ndarray
    confidences: np.ndarray
    correct: np.ndarray  # all false for coins matched as if their type were missing


def wrong_top_suggestions(
    calibration: Calibration,
    candidate_scores: Sequence[Mapping[int, float]],
    similarities: Sequence[float],
) -> TopSuggestions:
    """The top suggestions of coins matched as if their type were missing (so never right),
    with calibrated confidences (0 for a coin with no candidate)."""
    type_ids, odds, _ = best_types(candidate_scores, calibration.temperature)
    similarities = np.asarray(similarities, dtype=float)
    known = type_ids >= 0
    confidences = np.zeros(len(type_ids))
    confidences[known] = calibration.confidence(
        calibration.certainty(odds[known], similarities[known])
    )
    return TopSuggestions(type_ids, similarities, confidences, np.zeros(len(type_ids), bool))


def fit_type_floors(
    known: TopSuggestions,
    as_new: TopSuggestions,
    threshold: float,
    familiar: float,
    precision: float,
    new_type_share: float,
) -> dict[int, float]:
    """Per-type similarity floors for auto-accept, so that a backlog of known coins like
    ``known`` mixed with ``new_type_share`` of coins of missing types (like ``as_new``: held-out
    coins matched without their own type's references) is still auto-accepted at ``precision``.

    Greedy: while the mixture's precision falls short, raise the one type's floor that refuses
    the most wrong suggestions per right one refused (a cut just above a wrong coin, half-way to
    the next). Types no missing-type coin is drawn to keep ``familiar``."""
    if not len(known.type_ids) or not len(as_new.type_ids) or new_type_share <= 0:
        return {}
    weight = np.r_[
        np.full(len(known.type_ids), (1 - new_type_share) / len(known.type_ids)),
        np.full(len(as_new.type_ids), new_type_share / len(as_new.type_ids)),
    ]
    type_ids = np.r_[known.type_ids, as_new.type_ids]
    similarities = np.r_[known.similarities, as_new.similarities]
    right = np.r_[known.correct, np.zeros(len(as_new.type_ids), dtype=bool)]
    confidences = np.r_[known.confidences, as_new.confidences]
    accepted = (confidences >= threshold) & (similarities >= familiar) & (type_ids >= 0)
    floors: dict[int, float] = {}
    while True:
        total = weight[accepted].sum()
        if total == 0 or weight[accepted & right].sum() >= precision * total:
            return floors
        best: tuple[tuple[float, float], int, float] | None = None
        for type_id in np.unique(type_ids[accepted & ~right]):
            here = np.flatnonzero(accepted & (type_ids == type_id))
            here = here[np.argsort(similarities[here], kind="stable")]
            sims, is_right, w = similarities[here], right[here], weight[here]
            refused_right = np.cumsum(w * is_right)
            refused_wrong = np.cumsum(w * ~is_right)
            for i in np.flatnonzero(~is_right):
                if i + 1 < len(sims) and sims[i + 1] == sims[i]:
                    continue  # a floor cannot part equal similarities
                cost = refused_right[i]
                key = (refused_wrong[i] / cost if cost > 0 else np.inf, refused_wrong[i])
                if best is None or key > best[0]:
                    cut = np.nextafter(sims[i], 2.0)  # the least floor that refuses coin i
                    if i + 1 < len(sims):
                        cut = max(cut, (sims[i] + sims[i + 1]) / 2)
                    best = (key, int(type_id), float(cut))
        if best is None:
            return floors
        _, type_id, floor = best
        floors[type_id] = floor
        accepted &= ~((type_ids == type_id) & (similarities < floor))


def fit_calibration(
    candidate_scores: list[dict[int, float]],
    true_types: list[int],
    target_precision: float = 0.98,
    top_similarities: list[float] | None = None,
    base: Calibration | None = None,
    *,
    as_new_scores: Sequence[Mapping[int, float]] = (),
    as_new_similarities: Sequence[float] = (),
    new_type_share: float = 0.0,
) -> Calibration:
    """Fit temperature, isotonic map, auto-accept threshold and novelty floor on held-out coins.

    ``candidate_scores[i]`` are the type scores of held-out coin i (as from ``combine_images``);
    ``true_types[i]`` its catalogued type; ``top_similarities[i]`` the plain similarity of its
    best type (default: the best score), which the novelty floor is set on and certainty counts.
    ``as_new_scores`` and ``as_new_similarities``: the same for held-out coins matched without
    their own type's references, for the per-type floors (``fit_type_floors``) at
    ``new_type_share``. Fields of ``base`` already fitted (``SCORING_FIELDS``) are kept.
    """
    base = base or Calibration()
    scoring = {name: getattr(base, name) for name in SCORING_FIELDS}
    n = len(true_types)
    if n == 0:
        return Calibration(target_precision=target_precision, **scoring)
    best_t, _ = fit_temperature(candidate_scores, true_types)
    top_types, top_odds, top_similarity = best_types(candidate_scores, best_t)
    correct = top_types == np.asarray(true_types, dtype=np.int64)
    similarity_arr = np.array(top_similarities or top_similarity)
    certainty = base.certainty(top_odds, similarity_arr)
    correct_arr = correct.astype(float)
    bound = LOG_ODDS_CAP + base.similarity_weight  # similarities lie in [-1, 1]
    iso_x, iso_y = _pav(certainty, correct_arr, -bound, bound)
    calibration = Calibration(
        temperature=best_t,
        iso_x=iso_x,
        iso_y=iso_y,
        iso_space="log_odds",
        target_precision=target_precision,
        n_heldout=n,
        heldout_top1=float(correct_arr.mean()),
        **scoring,
    )
    confidence = calibration.confidence(certainty)
    threshold = accept_threshold(confidence, correct_arr.astype(bool), target_precision)
    calibration.accept_threshold = threshold
    kept = np.arange(n)
    if n > KEPT_HELDOUT:
        kept = np.sort(np.random.default_rng(0).choice(n, KEPT_HELDOUT, replace=False))
    calibration.heldout_certainty = [round(float(v), 5) for v in certainty[kept]]
    calibration.heldout_correct = [int(v) for v in correct_arr[kept]]
    calibration.heldout_similarity = [round(float(v), 5) for v in similarity_arr[kept]]
    right = similarity_arr[correct_arr.astype(bool)]
    if len(right):
        calibration.novelty_similarity = float(np.quantile(right, NOVELTY_QUANTILE))
        calibration.familiar_similarity = float(np.quantile(right, FAMILIAR_QUANTILE))
    calibration.new_type_share = new_type_share
    if len(as_new_scores):
        known = TopSuggestions(top_types, similarity_arr, confidence, correct)
        as_new = wrong_top_suggestions(calibration, as_new_scores, as_new_similarities)
        calibration.type_floors = fit_type_floors(
            known,
            as_new,
            threshold,
            calibration.familiar_similarity,
            target_precision,
            new_type_share,
        )
        floors = np.array([calibration.floor(t) for t in as_new.type_ids])
        calibration.heldout_as_new_accepted = float(
            np.mean((as_new.confidences >= threshold) & (as_new.similarities >= floors))
        )
        floor_of = np.array([calibration.floor(t) for t in known.type_ids])
    else:
        floor_of = calibration.familiar_similarity
    accepted = (confidence >= threshold) & (similarity_arr >= floor_of)
    if accepted.any():
        calibration.heldout_precision_at_threshold = float(correct_arr[accepted].mean())
        calibration.heldout_coverage_at_threshold = float(accepted.mean())
    return calibration


KEPT_HELDOUT = 3000  # held-out (certainty, right) pairs kept with a calibration, at most
# A batch's reviewed coins, all together, weigh this many times the held-out coins when its map
# is refitted: the batch's own photography is what its confidences must hold under.
BATCH_WEIGHT = 2.0
MIN_BATCH_COINS = 5  # reviewed coins of a batch before its calibration is refitted


def _weighted_quantile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    order = np.argsort(values, kind="stable")
    cumulative = np.cumsum(weights[order])
    at = np.searchsorted(cumulative, q * cumulative[-1], side="left")
    return float(values[order][min(at, len(values) - 1)])


def recalibrate_for_batch(
    base: Calibration,
    certainty: Sequence[float],
    correct: Sequence[bool],
    similarity: Sequence[float],
) -> Calibration:
    """``base`` refitted for one batch: its isotonic map, auto-accept threshold and similarity
    floors fitted on the held-out coins pooled with the batch's reviewed coins (``certainty``,
    whether the top type was right, its ``similarity``; matched without themselves), the batch
    weighing ``BATCH_WEIGHT`` times the held-out coins. ``base`` unchanged where the batch has
    fewer than ``MIN_BATCH_COINS`` reviewed coins."""
    n_batch = len(certainty)
    if n_batch < MIN_BATCH_COINS:
        return base
    home_x = np.asarray(base.heldout_certainty, dtype=float)
    n_home = len(home_x)
    x = np.r_[home_x, np.asarray(certainty, dtype=float)]
    y = np.r_[np.asarray(base.heldout_correct, dtype=float), np.asarray(correct, dtype=float)]
    sims = np.r_[np.asarray(base.heldout_similarity, dtype=float), np.asarray(similarity)]
    if len(sims) != len(x):  # a calibration that kept no similarities: the batch's alone
        x, y, sims = x[n_home:], y[n_home:], np.asarray(similarity, dtype=float)
        n_home = 0
    w_batch = BATCH_WEIGHT * n_home / n_batch if n_home else 1.0
    weights = np.r_[np.ones(n_home), np.full(n_batch, w_batch)]
    bound = LOG_ODDS_CAP + base.similarity_weight
    iso_x, iso_y = _pav(x, y, -bound, bound, weights=weights)
    refitted = Calibration.from_dict(
        {**base.as_dict(), "iso_x": iso_x, "iso_y": iso_y, "iso_space": "log_odds"}
    )
    confidence = refitted.confidence(x)
    refitted.accept_threshold = accept_threshold(
        confidence, y.astype(bool), base.target_precision, weights
    )
    right = y.astype(bool)
    if right.any():
        refitted.novelty_similarity = min(
            base.novelty_similarity,
            _weighted_quantile(sims[right], weights[right], NOVELTY_QUANTILE),
        )
        refitted.familiar_similarity = _weighted_quantile(
            sims[right], weights[right], FAMILIAR_QUANTILE
        )
    return refitted


def accept_threshold(
    confidence: np.ndarray,
    correct: np.ndarray,
    precision: float,
    weights: np.ndarray | None = None,
) -> float:
    """The lowest confidence t at which the suggestions with confidence >= t are at least
    ``precision`` right (1.01, i.e. never, if no t achieves it), each counted with its
    ``weights`` (default 1). Equal confidences are accepted or refused together, as a threshold
    would."""
    weights = np.ones(len(confidence)) if weights is None else np.asarray(weights, dtype=float)
    best = 1.01
    for value in np.unique(confidence)[::-1]:
        accepted = confidence >= value
        if np.average(correct[accepted], weights=weights[accepted]) >= precision:
            best = float(value)
    return best


def coverage_at_precision(confidence: np.ndarray, correct: np.ndarray, precision: float) -> float:
    """The largest share of queries that can be accepted, most confident first, while the
    accepted ones stay at least ``precision`` right."""
    if len(confidence) == 0:
        return 0.0
    order = np.argsort(-confidence, kind="stable")
    hits = np.cumsum(np.asarray(correct)[order])
    counts = np.arange(1, len(order) + 1)
    ok = np.flatnonzero(hits / counts >= precision)
    return float((ok[-1] + 1) / len(order)) if len(ok) else 0.0
