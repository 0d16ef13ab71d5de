"""``coinlens eval``: how far the home's current model can be trusted, in numbers and pictures.

Nothing is written to the catalogue; a query never matches itself, its other side or an exact
copy of its photo. What each figure means: docs/how-it-works/evaluation.md.
"""

from __future__ import annotations

import base64
import html
import io
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image as PILImage
from PIL import ImageDraw, ImageFont

from coinlens.catalog import ATTRIBUTION_LEVELS
from coinlens.identify.engine import CurrentModel, Matcher
from coinlens.identify.partial import series_name, suggest_levels, type_levels
from coinlens.identify.scoring import Calibration, coverage_at_precision
from coinlens.identify.shift import batch_shift, coin_signals
from coinlens.identify.verify import (
    CoinViews,
    KeypointVerifier,
    ViewKeypoints,
    decode_views,
    keypoint_photo,
    view_inliers,
    views_keypoints,
)
from coinlens.index import ReferenceIndex
from coinlens.ingest import IngestError, IngestItem, Problem, read_manifest, scan_folder
from coinlens.model.transforms import crop_to_array
from coinlens.storage import atomic_write, sha256_hex
from coinlens.vision import ImageLoadError, encode_jpeg, load_image
from coinlens.vision.cues import crop_cues
from coinlens.vision.localise import crop_coin, locate_coins

PRECISIONS = ("0.95", "0.98")
# Keypoint inliers from which a reference shows the query's own coin or die. Cash coins,
# leave-one-out, each query's best other picture of its type: 2 to 5 where that is another
# specimen, 19 (a 47 px wide thumbnail of the coin) or more where it is a rescan or a copy, none
# between; below ``verify.MIN_INLIERS`` (8) matches are chance.
SAME_COIN_INLIERS = 12
SAME_COIN_CANDIDATES = 3  # references of the query's type checked, nearest by embedding first
EVIDENCE_KINDS = {  # ``by_evidence``'s kinds of query, as reports name them
    "same_coin_or_die": "same coin or die among the references",
    "type_only": "only other coins of the type",
}


@dataclass
class LabelledSet:
    """Crops of a labelled folder: one group (photo) may hold two sides."""

    paths: list[Path] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    shas: list[str] = field(default_factory=list)
    crops: list[np.ndarray] = field(default_factory=list)  # one entry per crop
    keypoint_crops: list[bytes] = field(default_factory=list)  # JPEG at keypoint resolution
    keypoint_pictures: dict[int, bytes] = field(default_factory=dict)  # group -> its pair photo
    rounds: list[bool] = field(default_factory=list)
    framed: list[bool] = field(default_factory=list)  # layout "crop": size in the frame is a cue
    group_of_crop: list[int] = field(default_factory=list)
    coins: list[str] = field(default_factory=list)  # group -> the coin it shows (accession)
    # group -> its value of the column ``--group-by`` names (the lot): None where not given
    units: list[str | None] = field(default_factory=list)
    # label -> what a manifest says of the type (``partial.type_levels`` reads it)
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def views(self, row: int) -> CoinViews:
        """Crop ``row``'s views for keypoint verification (``verify.CoinViews``)."""
        picture = self.keypoint_pictures.get(self.group_of_crop[row])
        return decode_views(self.keypoint_crops[row], picture)

    @property
    def groups(self) -> list[list[int]]:
        groups: list[list[int]] = [[] for _ in self.paths]
        for row, group in enumerate(self.group_of_crop):
            groups[group].append(row)
        return groups

    def only(self, keep: set[str]) -> LabelledSet:
        """The photos whose label is in ``keep`` (references a catalogue of fewer types holds;
        queries of some types), with their crops."""
        out = LabelledSet(records=self.records)
        for group, label in enumerate(self.labels):
            if label not in keep:
                continue
            new = len(out.paths)
            out.paths.append(self.paths[group])
            out.labels.append(label)
            out.shas.append(self.shas[group])
            out.coins.append(self.coins[group])
            out.units.append(self.units[group])
            if group in self.keypoint_pictures:
                out.keypoint_pictures[new] = self.keypoint_pictures[group]
            for row, owner in enumerate(self.group_of_crop):
                if owner == group:
                    out.crops.append(self.crops[row])
                    out.keypoint_crops.append(self.keypoint_crops[row])
                    out.rounds.append(self.rounds[row])
                    out.framed.append(self.framed[row])
                    out.group_of_crop.append(new)
        return out


def load_labelled(
    source: Path,
    size: int,
    on_item: Callable[[], None] | None = None,
    *,
    sides_from_names: bool = False,
    group_by: str | None = None,
) -> LabelledSet:
    """Decode and localise every labelled image below a folder, or of a CSV manifest's rows
    (a tray's coins share its label; two sides of one picture form one group). The photos of
    one accession are one coin: a manifest's rows sharing it, or with ``sides_from_names`` files
    named as the sides of one coin (``ingest.side_from_name``). ``group_by`` names the
    manifest column (e.g. ``lot``) whose coins are left out together."""
    if source.is_file():
        scan = read_manifest(source, status="catalogued")
    else:
        scan = scan_folder(source, sides_from_names=sides_from_names)
    labelled = [item for item in scan.items if item.type_reference]
    if not labelled:
        raise IngestError(f"{source}: no labelled images (put each type's images in a folder)")
    if group_by is not None:
        unit_of = {item.accession: group_value(item, group_by) for item in labelled}
        if all(value is None for value in unit_of.values()):
            raise IngestError(f"{source}: no coin has a {group_by!r} (a manifest column)")
    out = LabelledSet(problems=list(scan.problems))
    for item in labelled:
        try:
            data = item.path.read_bytes()
            image = load_image(data).rgb
        except (OSError, ImageLoadError) as exc:
            out.problems.append(Problem(item.origin, str(exc)))
            continue
        layout = locate_coins(image)
        boxes = layout.boxes if layout.kind in ("pair", "tray") else layout.boxes[:1]
        group = len(out.paths)
        out.paths.append(item.path)
        out.labels.append(item.type_reference)
        out.shas.append(sha256_hex(data))
        out.coins.append(item.accession)
        out.units.append(unit_of[item.accession] if group_by is not None else None)
        record = out.records.setdefault(item.type_reference, {"reference": item.type_reference})
        for name, value in item.type_fields.items():
            record.setdefault(name, value)
        if layout.kind == "pair":
            out.keypoint_pictures[group] = keypoint_photo(image)
        for box in boxes:
            # the crop as ingest stores it and identify reads it back (a JPEG, at most
            # CROP_MAX_SIZE px): eval measures what identify does, not what the raw pixels allow
            # (kaa test, seed-1 model: 0.9493 on raw crops, 0.9454 stored, as identify reads)
            stored = encode_jpeg(crop_coin(image, box))
            out.crops.append(crop_to_array(PILImage.open(io.BytesIO(stored)), size))
            out.keypoint_crops.append(stored)
            out.rounds.append(box.round)
            out.framed.append(layout.kind == "crop")
            out.group_of_crop.append(group)
        if on_item:
            on_item()
    return out


def group_value(item: IngestItem, column: str) -> str | None:
    """The coin's value of a manifest ``column`` (``--group-by``): a column kept in its notes
    (``lot``), or one the manifest names for the specimen or the type."""
    value = item.notes.get(column, item.specimen_fields.get(column, item.type_fields.get(column)))
    return None if value in (None, "") else str(value)


Exclusion = tuple[set[int], set[str]]  # reference groups and sha256s a query must not count


def query_units(queries: LabelledSet, by_coin: bool) -> list[list[int]]:
    """The queries as matched: each photo (side) alone, or ``by_coin`` the photos of each coin
    together (both sides combined, as identify combines a specimen's images)."""
    if not by_coin:
        return [[g] for g in range(len(queries.paths))]
    coins: dict[str, list[int]] = {}
    for g, coin in enumerate(queries.coins):
        coins.setdefault(coin, []).append(g)
    return list(coins.values())


def exclusions(
    references: LabelledSet, queries: LabelledSet, units: list[list[int]], leave_one_out: bool
) -> list[Exclusion] | None:
    """What each query unit must not be matched with: its whole coin (the other side's patina
    and wear would give it away), also where the queries are another set holding the same
    accession; in leave-one-out, exact copies of its photos (same sha256) too;
    with a ``--group-by`` column, every coin sharing its value (a hoard lot's coins may share
    dies), also when the queries are another set. None where nothing is excluded."""
    grouped = any(value is not None for value in references.units)
    shared = set(references.coins) & {queries.coins[g] for unit in units for g in unit}
    if not leave_one_out and not grouped and not shared:
        return None
    by_coin: dict[str, set[int]] = {}
    by_unit: dict[str, set[int]] = {}
    for g, (coin, value) in enumerate(zip(references.coins, references.units, strict=True)):
        by_coin.setdefault(coin, set()).add(g)
        if value is not None:
            by_unit.setdefault(value, set()).add(g)
    out = []
    for unit in units:
        groups: set[int] = set()
        shas: set[str] = set()
        for g in unit:  # a coin never serves as its own reference, in whichever set
            groups |= by_coin.get(queries.coins[g], set())
            if leave_one_out:
                shas.add(queries.shas[g])
            if queries.units[g] is not None:
                groups |= by_unit.get(queries.units[g], set())
        out.append((groups, shas | {references.shas[r] for r in groups}))
    return out


def answerable_queries(
    references: LabelledSet,
    queries: LabelledSet,
    units: list[list[int]],
    excluded: list[Exclusion] | None,
    leave_one_out: bool,
) -> tuple[list[int], list[int]]:
    """Query units to score, and those no answer could get right: no reference of their type is
    left once their exclusions are (to the catalogue, a type it does not hold), which should be
    flagged as new.

    Leave-one-out keeps one copy of each (picture, label): exact duplicates are one query, not
    many."""
    references_of: dict[str, list[int]] = {}
    for g, label in enumerate(references.labels):
        references_of.setdefault(label, []).append(g)
    seen: set[tuple[str, str]] = set()
    selected, unknown = [], []
    for u, unit in enumerate(units):
        label = queries.labels[unit[0]]
        if leave_one_out and len(unit) == 1:
            key = (queries.shas[unit[0]], label)
            if key in seen:
                continue
            seen.add(key)
        groups, shas = excluded[u] if excluded else (set(), set())
        left = [
            g
            for g in references_of.get(label, [])
            if g not in groups and references.shas[g] not in shas
        ]
        (selected if left else unknown).append(u)
    return selected, unknown


@dataclass
class EvalResult:
    summary: dict[str, Any]
    labels: list[str]
    confusion: np.ndarray
    mistakes: list[dict[str, Any]]
    reliability: dict[str, list[dict[str, float]]] = field(default_factory=dict)


CONFIDENCE_BINS = 10


def reliability_bins(confidence: np.ndarray, correct: np.ndarray) -> list[dict[str, float]]:
    """Suggestions grouped by confidence into ``CONFIDENCE_BINS`` equal bins: each non-empty
    bin's count, mean confidence and share right (a calibrated score has the two equal)."""
    confidence = np.asarray(confidence, dtype=float)
    correct = np.asarray(correct, dtype=bool)
    which = np.minimum((confidence * CONFIDENCE_BINS).astype(int), CONFIDENCE_BINS - 1)
    bins = []
    for b in range(CONFIDENCE_BINS):
        inside = which == b
        if inside.any():
            bins.append(
                {
                    "count": int(inside.sum()),
                    "confidence": round(float(confidence[inside].mean()), 4),
                    "right": round(float(correct[inside].mean()), 4),
                }
            )
    return bins


def unknown_type_decisions(decisions: list[str]) -> dict[str, float] | None:
    """How queries of types the references lack were decided: ideally ``possible_new_type``,
    never ``auto_accept`` (a confident wrong type is the one answer a curator may not see)."""
    if not decisions:
        return None
    return {
        "n": len(decisions),
        "flagged_new": round(decisions.count("possible_new_type") / len(decisions), 4),
        "auto_accepted": round(decisions.count("auto_accept") / len(decisions), 4),
    }


def _share(hits: np.ndarray) -> float | None:
    return round(float(hits.mean()), 4) if len(hits) else None


def share_text(value: float | None) -> str:
    """A share as printed in reports: three places, "-" where there was nothing to count."""
    return "-" if value is None else f"{value:.3f}"


def went_to_text(mistaken_for: dict[str, int]) -> str:
    """``per_type_report``'s ``mistaken_for`` as one line: "20c 16, 5c 15"."""
    return ", ".join(f"{name} {count}" for name, count in mistaken_for.items())


def per_type_report(
    names: list[str],
    truths: np.ndarray,
    suggested: np.ndarray,
    in_top5: np.ndarray,
    accepted: np.ndarray,
) -> list[dict[str, Any]]:
    """Each type's own numbers, weakest first: a collection's overall top-1 hides which types
    need more or better reference photos, and which suggestions a curator should not trust.

    ``truths`` and ``suggested`` are type ids per query (``suggested`` -1 where nothing was),
    ``in_top5`` and ``accepted`` flags per query. A type's ``top1`` is its coins found (recall),
    ``precision`` the share right of the coins suggested as it, ``auto_accept_precision`` the same
    for the coins auto-accepted as it; ``mistaken_for`` the types its coins went to most.
    """
    report = []
    for type_id in sorted(set(truths.tolist()) | set(suggested[suggested >= 0].tolist())):
        mine, as_it = truths == type_id, suggested == type_id
        wrong = suggested[mine & ~as_it]
        others, counts = np.unique(wrong[wrong >= 0], return_counts=True)
        report.append(
            {
                "type": names[type_id],
                "queries": int(mine.sum()),
                "top1": _share(as_it[mine]),
                "top5": _share(in_top5[mine]),
                "suggested": int(as_it.sum()),
                "precision": _share(mine[as_it]),
                "auto_accepted": int((as_it & accepted).sum()),
                "auto_accept_precision": _share(mine[as_it & accepted]),
                "mistaken_for": {
                    names[other]: int(count)
                    for count, other in sorted(
                        zip(counts, others, strict=True), key=lambda pair: (-pair[0], pair[1])
                    )[:3]
                },
            }
        )

    def weakness(row: dict[str, Any]) -> tuple[float, float, int, str]:
        top1, precision = row["top1"], row["precision"]
        return (
            2.0 if top1 is None else top1,
            2.0 if precision is None else precision,
            -row["queries"],
            row["type"],
        )

    return sorted(report, key=weakness)


def calibration_error(bins: list[dict[str, float]]) -> float | None:
    """Expected calibration error: the count-weighted gap between confidence and share right."""
    total = sum(b["count"] for b in bins)
    if not total:
        return None
    gap = sum(b["count"] * abs(b["confidence"] - b["right"]) for b in bins)
    return round(gap / total, 4)


def same_coin_shown(
    references: LabelledSet,
    queries: LabelledSet,
    selected: list[int],
    excluded: list[Exclusion] | None,
    query_vectors: np.ndarray,
    reference_vectors: np.ndarray,
    reference_keypoints: KeypointVerifier,
    leave_one_out: bool,
) -> np.ndarray:
    """For each query group in ``selected``: whether one of the references of its type (never an
    exact copy, same sha256, nor one ``excluded[i]`` rules out) shows the query's own coin or
    die, by keypoint inliers (``SAME_COIN_INLIERS``) with the ``SAME_COIN_CANDIDATES`` nearest
    of them by embedding."""
    rows_of_label: dict[str, list[int]] = {}
    for row, group in enumerate(references.group_of_crop):
        rows_of_label.setdefault(references.labels[group], []).append(row)
    query_rows = queries.groups

    def query_keypoints(row: int) -> ViewKeypoints:
        if leave_one_out:  # the queries are the references: their keypoints are cached there
            return reference_keypoints.reference(row)
        return views_keypoints(queries.views(row))

    shown = []
    for i, g in enumerate(selected):
        groups, shas = excluded[i] if excluded else (set(), set())
        shas = shas | {queries.shas[g]}
        rows = [
            r
            for r in rows_of_label.get(queries.labels[g], [])
            if references.shas[references.group_of_crop[r]] not in shas
            and references.group_of_crop[r] not in groups
        ]
        own = query_rows[g]
        if not rows or not own:
            shown.append(False)
            continue
        nearness = (query_vectors[own] @ reference_vectors[rows].T).max(axis=0)
        nearest = [rows[i] for i in np.argsort(-nearness, kind="stable")[:SAME_COIN_CANDIDATES]]
        candidates = [reference_keypoints.reference(r) for r in nearest]
        best = max(max(view_inliers(query_keypoints(q), candidates)) for q in own)
        shown.append(best >= SAME_COIN_INLIERS)
    return np.array(shown, dtype=bool)


def evidence_report(same_coin: np.ndarray, top1: np.ndarray, top5: np.ndarray) -> dict[str, Any]:
    """Top-1 and top-5 apart for the queries whose own coin or die a reference shows and for
    those shown only other coins of their type."""
    report = {}
    for kind, rows in (("same_coin_or_die", same_coin), ("type_only", ~same_coin)):
        report[kind] = {
            "n_queries": int(rows.sum()),
            "top1": round(float(top1[rows].mean()), 4) if rows.any() else None,
            "top5": round(float(top5[rows].mean()), 4) if rows.any() else None,
        }
    return report


def floors_by_label(model: CurrentModel, type_id: dict[str, int]) -> Calibration:
    """The model's calibration with its per-type auto-accept floors moved from the catalogue's
    type ids to the labels' numbering here (``type_id``), by type reference; a label the
    catalogue lacks keeps the common floor. Without it a floor fitted for one type would guard
    whichever label happened to get that number."""
    calibration = model.calibration
    floors = {
        type_id[model.type_references[t]]: floor
        for t, floor in calibration.type_floors.items()
        if model.type_references.get(t) in type_id
    }
    return replace(calibration, type_floors=floors)


def _accepted(accepted: np.ndarray, right: np.ndarray) -> dict[str, float | None]:
    """The share of queries ``accepted`` and how many of those were ``right``."""
    return {
        "coverage": round(float(accepted.mean()), 4) if len(accepted) else 0.0,
        "precision": round(float(right[accepted].mean()), 4) if accepted.any() else None,
    }


def unit_report(
    results: list[tuple[list[Any], str, dict[int, float]]], truths: list[int]
) -> dict[str, Any]:
    """Top-1, top-5, coverage at precision and what auto-accept took, of matched queries."""
    pairs = list(zip(results, truths, strict=True))
    top1 = np.array([bool(r[0]) and r[0][0].type_id == t for r, t in pairs], dtype=bool)
    top5 = np.array([t in [s.type_id for s in r[0][:5]] for r, t in pairs], dtype=bool)
    certainty = np.array([r[0][0].certainty if r[0] else -np.inf for r in results])
    accepted = np.array([r[1] == "auto_accept" for r in results], dtype=bool)
    return {
        "n_queries": len(truths),
        "top1": round(float(top1.mean()), 4) if len(top1) else 0.0,
        "top5": round(float(top5.mean()), 4) if len(top5) else 0.0,
        "coverage_at_precision": {
            p: round(coverage_at_precision(certainty, top1, float(p)), 4) for p in PRECISIONS
        },
        "auto_accept": _accepted(accepted, top1),
    }


def series_of_label(label: str, records: dict[str, dict[str, Any]]) -> str:
    """The series a label's type belongs to: the corpus its reference names ("RIC VIII"), else
    the label's first folder ("ocre/ric.8.alex.12" -> "ocre"), else "all"."""
    reference = str(records.get(label, {}).get("reference") or label)
    return series_name(reference) or (label.split("/")[0] if "/" in label else "all")


def series_report(
    results: list[tuple[list[Any], str, dict[int, float]]],
    truths: list[int],
    names: list[str],
    records: dict[str, dict[str, Any]],
) -> dict[str, dict[str, Any]]:
    """Top-1 and auto-accept of each series' queries: a precision promised for the collection
    must hold in each of its series, not only on average."""
    rows: dict[str, list[tuple[bool, bool]]] = {}
    for (suggestions, decision, _), truth in zip(results, truths, strict=True):
        right = bool(suggestions) and suggestions[0].type_id == truth
        series = series_of_label(names[truth], records)
        rows.setdefault(series, []).append((right, decision == "auto_accept"))
    report = {}
    for series in sorted(rows):
        right = np.array([r for r, _ in rows[series]], dtype=bool)
        accepted = np.array([a for _, a in rows[series]], dtype=bool)
        report[series] = {
            "n_queries": len(right),
            "top1": round(float(right.mean()), 4),
            "auto_accept": _accepted(accepted, right),
        }
    return report


def partial_report(
    results: list[tuple[list[Any], str, dict[int, float]]],
    truths: list[int],
    names: list[str],
    records: dict[str, dict[str, Any]],
) -> dict[str, dict[str, Any]]:
    """How right the partial attributions (``identify.partial``) are where they matter: on the
    queries not auto-accepted. For each level: how many had one, the share right, their mean
    confidence, and the share right among those at 0.9 or more (with how many those were)."""
    tallies: dict[str, list[tuple[bool, float]]] = {}
    for (suggestions, decision, _), truth in zip(results, truths, strict=True):
        if decision == "auto_accept":
            continue
        true_levels = type_levels(records.get(names[truth], {"reference": names[truth]}))
        ranked = [
            (records.get(names[s.type_id], {"reference": names[s.type_id]}), s.score)
            for s in suggestions
        ]
        for level in suggest_levels(ranked):
            if level["level"] in true_levels:
                right = level["value"] == true_levels[level["level"]][0]
                tallies.setdefault(level["level"], []).append((right, level["confidence"]))
    report = {}
    for level in ATTRIBUTION_LEVELS:
        if level not in tallies:
            continue
        right = np.array([r for r, _ in tallies[level]], dtype=bool)
        confidence = np.array([c for _, c in tallies[level]])
        sure = confidence >= 0.9
        report[level] = {
            "n": len(right),
            "right": round(float(right.mean()), 4),
            "mean_confidence": round(float(confidence.mean()), 4),
            "n_at_0.9": int(sure.sum()),
            "right_at_0.9": round(float(right[sure].mean()), 4) if sure.any() else None,
        }
    return report


def evaluate(
    model: CurrentModel,
    references: LabelledSet,
    queries: LabelledSet | None,
    *,
    top_k: int = 5,
    verify: bool = True,
    batch_name: str = "queries",
) -> EvalResult:
    """Match ``queries`` (or, if None, the references leave-one-out) and score the answers;
    ``verify`` re-ranks uncertain shortlists by keypoint matching. The queries are one batch
    (``batch_name``): its shift from the model's calibration coins is measured as ``coinlens
    identify`` measures it, and what would be auto-accepted after its hold is scored."""
    embedder = model.embedder
    leave_one_out = queries is None
    embed_started = time.perf_counter()
    ref_crops = np.stack(references.crops)
    ref_vectors = embedder.embed_arrays(ref_crops, np.array(references.rounds))
    ref_cues = crop_cues(ref_crops, references.framed)
    embed_seconds = time.perf_counter() - embed_started
    names = sorted(set(references.labels) | set(queries.labels if queries else []))
    type_id = {name: i for i, name in enumerate(names)}
    index = ReferenceIndex(embedder.dim)
    index.add(
        np.arange(len(references.crops)),
        ref_vectors,
        np.array([type_id[references.labels[g]] for g in references.group_of_crop]),
        np.array(references.group_of_crop),
        [references.shas[g] for g in references.group_of_crop],
        ref_cues,
    )
    keypoint_cache = KeypointVerifier(references.views)  # references' keypoints, computed once
    verifier = keypoint_cache if verify else None
    matcher = Matcher(index, floors_by_label(model, type_id), verifier=verifier)
    started = time.perf_counter()
    if leave_one_out:
        queries = references
        vectors, cues = ref_vectors, ref_cues
    else:
        query_crops = np.stack(queries.crops)
        vectors = embedder.embed_arrays(query_crops, np.array(queries.rounds))
        cues = crop_cues(query_crops, queries.framed)
    units = query_units(queries, by_coin=False)  # each photo (side) alone: unit g is [g]
    excluded = exclusions(references, queries, units, leave_one_out)
    selected, unknown = answerable_queries(references, queries, units, excluded, leave_one_out)
    matched = selected + unknown
    all_groups = queries.groups
    results = matcher.match(
        vectors,
        [all_groups[g] for g in matched],
        top_k=max(top_k, 5),
        exclude=[excluded[g] for g in matched] if excluded else None,
        query_crop=queries.views,
        query_cues=cues,
    )
    shift = batch_shift(
        model.calibration.shift_profile,
        [
            coin_signals([s.similarity for s in r[0]], cues[all_groups[g]])
            for r, g in zip(results, matched, strict=True)
        ],
    )
    results, unknown_results = results[: len(selected)], results[len(selected) :]
    seconds = time.perf_counter() - started
    if leave_one_out:  # the queries' embeddings are the references': count that time too
        seconds += embed_seconds
    n_images = sum(len(all_groups[g]) for g in matched) if leave_one_out else len(queries.crops)

    truths = [type_id[queries.labels[g]] for g in selected]
    top1 = np.array(
        [bool(r[0]) and r[0][0].type_id == t for r, t in zip(results, truths, strict=True)]
    )
    top5 = np.array(
        [t in [s.type_id for s in r[0][:5]] for r, t in zip(results, truths, strict=True)]
    )
    same_coin = same_coin_shown(
        references,
        queries,
        selected,
        [excluded[g] for g in selected] if excluded else None,
        vectors,
        ref_vectors,
        keypoint_cache,
        leave_one_out,
    )
    certainty = np.array([r[0][0].certainty if r[0] else -np.inf for r in results])
    confidence = np.array([r[0][0].score if r[0] else 0.0 for r in results])
    accepted = np.array([r[1] == "auto_accept" for r in results])
    decisions = {
        d: int(sum(r[1] == d for r in results))
        for d in ("auto_accept", "review", "possible_new_type")
    }
    # every suggestion shown, the top ones and the runner-ups apart: is each score what it says?
    shown = {"top": ([], []), "runner_ups": ([], [])}
    for r, t in zip(results, truths, strict=True):
        for place, s in enumerate(r[0][:top_k]):
            scores, right = shown["top" if place == 0 else "runner_ups"]
            scores.append(s.score)
            right.append(s.type_id == t)
    reliability = {group: reliability_bins(*values) for group, values in shown.items()}
    calibration_errors = {group: calibration_error(bins) for group, bins in reliability.items()}
    kept = accepted & (not shift.shifted)  # a shifted batch's auto-accepts wait for an audit
    suggested = np.array([r[0][0].type_id if r[0] else -1 for r in results], dtype=int)
    confusion = np.zeros((len(names), len(names)), dtype=int)
    for r, t in zip(results, truths, strict=True):
        if r[0]:
            confusion[t, r[0][0].type_id] += 1
    summary = {
        "n_queries": len(truths),
        "n_unanswerable": len(unknown),
        "unknown_types": unknown_type_decisions([r[1] for r in unknown_results]),
        "top1": round(float(top1.mean()), 4) if len(top1) else 0.0,
        "top5": round(float(top5.mean()), 4) if len(top5) else 0.0,
        "coverage_at_precision": {
            p: round(coverage_at_precision(certainty, top1, float(p)), 4) for p in PRECISIONS
        },
        "images_per_second": round(n_images / seconds, 1) if seconds else None,
        "by_evidence": evidence_report(same_coin, top1, top5),
        "at_calibrated_threshold": {
            "threshold": model.calibration.accept_threshold,
            "coverage": round(float(accepted.mean()), 4) if len(accepted) else 0.0,
            "precision": round(float(top1[accepted].mean()), 4) if accepted.any() else None,
        },
        "calibration_error": calibration_errors,
        "shift": shift.as_dict(),
        "batches": {
            batch_name: {
                "n_queries": len(truths),
                "shift": {"score": shift.score, "threshold": shift.threshold},
                "shifted": shift.shifted,
                "calibration_error": calibration_errors["top"],
                "auto_accept": _accepted(accepted, top1),
                "auto_accept_after_hold": _accepted(kept, top1),
            }
        },
        "decisions": decisions,
        "leave_one_out": leave_one_out,
        "verified_by_keypoints": verifier.verified if verifier else 0,
        "model_version": model.version.id,
        "backbone": model.version.backbone,
        "n_references": len(references.crops),
        "problems": len(references.problems) + (0 if leave_one_out else len(queries.problems)),
        "per_type": per_type_report(names, np.array(truths, dtype=int), suggested, top5, accepted),
    }
    summary["per_side"] = unit_report(results, truths)
    summary["by_series"] = series_report(
        results, truths, names, {**references.records, **queries.records}
    )
    coins = query_units(queries, by_coin=True)
    if any(len(unit) > 1 for unit in coins):  # both sides combined, as identify combines them
        coin_excluded = exclusions(references, queries, coins, leave_one_out)
        chosen, _ = answerable_queries(references, queries, coins, coin_excluded, leave_one_out)
        coin_results = matcher.match(
            vectors,
            [[row for g in coins[u] for row in all_groups[g]] for u in chosen],
            top_k=max(top_k, 5),
            exclude=[coin_excluded[u] for u in chosen] if coin_excluded else None,
            query_crop=queries.views,
            query_cues=cues,
        )
        coin_truths = [type_id[queries.labels[coins[u][0]]] for u in chosen]
        summary["per_coin"] = unit_report(coin_results, coin_truths)
        summary["partial"] = partial_report(
            coin_results, coin_truths, names, {**references.records, **queries.records}
        )
    else:
        summary["partial"] = partial_report(
            results, truths, names, {**references.records, **queries.records}
        )
    wrong = [i for i in np.argsort(-confidence) if not top1[i]][:40]
    mistakes = []
    for i in wrong:
        suggestions, decision, _ = results[i]
        mistakes.append(
            {
                "query": queries.paths[selected[i]],
                "truth": names[truths[i]],
                "decision": decision,
                "same_coin_or_die": bool(same_coin[i]),
                "suggestions": [
                    {
                        "type": names[s.type_id],
                        "score": s.score,
                        "similarity": s.similarity,
                        "evidence": [
                            references.paths[references.group_of_crop[e]] for e in s.evidence[:3]
                        ],
                    }
                    for s in suggestions[:3]
                ],
            }
        )
    return EvalResult(summary, names, confusion, mistakes, reliability)


def _save_png(image: PILImage.Image, path: Path) -> None:
    """Write ``image`` as a PNG, atomically (a report re-run never leaves half a picture)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    atomic_write(path, buffer.getvalue())


def confusion_png(labels: list[str], confusion: np.ndarray, path: Path) -> None:
    """A confusion matrix as a picture: rows the true type, columns the suggested one."""
    n = len(labels)
    cell = max(14, min(48, 900 // max(n, 1)))
    font = ImageFont.load_default()
    margin = min(220, 12 + 7 * max((len(label) for label in labels), default=1))
    size = margin + cell * n + 10
    image = PILImage.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(image)
    rows = confusion.sum(axis=1, keepdims=True).clip(min=1)
    share = confusion / rows
    for i in range(n):
        for j in range(n):
            shade = int(255 * (1 - share[i, j]))
            colour = (shade, shade, 255) if i == j else (255, shade, shade)
            box = [
                margin + j * cell,
                margin + i * cell,
                margin + (j + 1) * cell - 1,
                margin + (i + 1) * cell - 1,
            ]
            draw.rectangle(box, fill=colour, outline=(220, 220, 220))
            if confusion[i, j] and cell >= 20:
                draw.text((box[0] + 3, box[1] + 3), str(confusion[i, j]), fill="black", font=font)
        draw.text((4, margin + i * cell + cell // 3), labels[i][:30], fill="black", font=font)
        column = PILImage.new("RGB", (margin, cell), "white")
        ImageDraw.Draw(column).text((4, cell // 3), labels[i][:30], fill="black", font=font)
        image.paste(column.rotate(90, expand=True), (margin + i * cell, 0))
    draw.text((4, 4), "rows: true type, columns: suggested", fill="black", font=font)
    _save_png(image, path)


def reliability_png(reliability: dict[str, list[dict[str, float]]], path: Path) -> None:
    """A reliability diagram: share right against confidence for the top suggestions and the
    runner-ups, one dot per bin (area by count); dots on the diagonal mean calibrated scores."""
    side, margin = 360, 48
    image = PILImage.new("RGB", (side + margin + 16, side + margin + 40), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()

    def at(confidence: float, right: float) -> tuple[float, float]:
        return margin + confidence * side, 24 + (1 - right) * side

    draw.rectangle([*at(0, 1), *at(1, 0)], outline=(160, 160, 160))
    draw.line([*at(0, 0), *at(1, 1)], fill=(200, 200, 200), width=1)
    for tick in (0.0, 0.5, 1.0):
        x, y = at(tick, tick)
        draw.text((x - 8, 24 + side + 4), f"{tick:.1f}", fill="black", font=font)
        draw.text((4, y - 6), f"{tick:.1f}", fill="black", font=font)
    draw.text((margin, 24 + side + 18), "confidence shown", fill="black", font=font)
    draw.text((4, 4), "share right", fill="black", font=font)
    colours = {"top": (40, 60, 220), "runner_ups": (230, 120, 20)}
    total = max(1, max((b["count"] for bins in reliability.values() for b in bins), default=1))
    for group, bins in reliability.items():
        colour = colours.get(group, (0, 0, 0))
        for b in bins:
            x, y = at(b["confidence"], b["right"])
            radius = 2 + 10 * (b["count"] / total) ** 0.5
            draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=colour)
    for row, (group, colour) in enumerate(colours.items()):  # bottom right: confident and wrong
        x, y = margin + side - 100, 24 + side - 40 + 14 * row
        draw.ellipse([x, y + 2, x + 8, y + 10], fill=colour)
        draw.text((x + 12, y), group.replace("_", "-"), fill="black", font=font)
    _save_png(image, path)


def _thumb(path: Path, size: int = 160) -> str:
    try:
        image = load_image(path.read_bytes()).rgb
    except (OSError, ImageLoadError):
        return ""
    image.thumbnail((size, size))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


def mistakes_html(result: EvalResult, path: Path) -> None:
    """The most confident wrong answers: each query beside its suggested types' references."""
    e = html.escape
    rows = []
    for mistake in result.mistakes:
        cells = [
            f'<td><img src="{_thumb(mistake["query"])}"><br><b>true: {e(mistake["truth"])}'
            f"</b><br><small>{e(mistake['query'].name)}</small>"
            + (
                "<br><small>its own coin or die is among the references</small>"
                if mistake["same_coin_or_die"]
                else ""
            )
            + "</td>"
        ]
        for s in mistake["suggestions"]:
            pictures = "".join(
                f'<img src="{_thumb(p, 100)}" title="{e(str(p))}">' for p in s["evidence"]
            )
            cells.append(
                f"<td>{pictures}<br>{e(s['type'])} &middot; confidence "
                f"{s['score']:.2f} &middot; similarity {s['similarity']:.3f}</td>"
            )
        rows.append(f"<tr><td>{e(mistake['decision'])}</td>{''.join(cells)}</tr>")
    summary = result.summary
    share = share_text
    types = "".join(
        f"<tr><td>{e(row['type'])}</td><td>{row['queries']}</td><td>{share(row['top1'])}</td>"
        f"<td>{share(row['top5'])}</td><td>{row['suggested']}</td>"
        f"<td>{share(row['precision'])}</td><td>{row['auto_accepted']}</td>"
        f"<td>{share(row['auto_accept_precision'])}</td>"
        f"<td>{e(went_to_text(row['mistaken_for']))}</td></tr>"
        for row in summary.get("per_type", [])
    )
    evidence = " &middot; ".join(
        f"{e(EVIDENCE_KINDS[kind])}: {row['n_queries']} queries, top-1 {share(row['top1'])}, "
        f"top-5 {share(row['top5'])}"
        for kind, row in summary.get("by_evidence", {}).items()
    )
    page = f"""<!doctype html><html lang="en"><meta charset="utf-8">
<title>coinlens eval: types and worst mistakes</title>
<style>body{{font-family:sans-serif;margin:1.5em}} td{{vertical-align:top;padding:6px;
border-bottom:1px solid #ddd}} img{{margin:2px;border-radius:4px}}
.types td,.types th{{padding:3px 8px;text-align:right}} .types td:first-child{{text-align:left}}
</style>
<h1>coinlens eval</h1>
<p>{summary["n_queries"]} queries &middot; top-1 {summary["top1"]:.3f} &middot; top-5
{summary["top5"]:.3f} &middot; coverage at 98% precision
{summary["coverage_at_precision"]["0.98"]:.3f} &middot; model version {summary["model_version"]}
</p>
<p>{evidence}</p>
<h2>Most confident mistakes</h2>
<table><tr><th>decision</th><th>query</th><th>1st suggestion</th><th>2nd</th><th>3rd</th>
</tr>{"".join(rows) or "<tr><td>no mistakes</td></tr>"}</table>
<h2 id="types">Per type, weakest first</h2>
<p>top-1: the share of the type's coins it was the first suggestion for; precision: the share
right of the coins suggested as the type; auto-accepted: coins accepted as the type without
review, and the share of those right.</p>
<table class="types"><tr><th>type</th><th>queries</th><th>top-1</th><th>top-5</th>
<th>suggested</th><th>precision</th><th>auto-accepted</th><th>right</th><th>went to</th></tr>
{types}</table></html>"""
    atomic_write(path, page)
