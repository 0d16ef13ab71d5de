"""Scores, calibration and decisions, on controlled numbers."""

from __future__ import annotations

import numpy as np

from coinlens.identify.scoring import (
    Calibration,
    accept_threshold,
    combine_images,
    coverage_at_precision,
    decide,
    fit_calibration,
    image_type_scores,
    rank,
)


def test_type_scores_take_the_best_reference_per_type() -> None:
    scores, evidence, floor = image_type_scores(
        np.array([0.9, 0.8, 0.7, 0.6]), np.array([1, 2, 3, -1]), {1: 10, 2: 20, 3: 10}
    )
    assert scores == {10: 0.9, 20: 0.8} and evidence == {10: [1, 3], 20: [2]}
    assert floor == 0.7


def test_sides_are_combined_with_a_floor_for_missing_types() -> None:
    obverse = ({10: 0.9, 20: 0.5}, {10: [1], 20: [2]}, 0.4)
    reverse = ({20: 0.95}, {20: [5]}, 0.6)
    scores, evidence = combine_images([obverse, reverse])
    assert scores == {10: (0.9 + 0.6) / 2, 20: (0.5 + 0.95) / 2}
    assert evidence[20] == [2, 5]


def _held_out(n: int, seed: int = 0):
    """Synthetic held-out coins: the true type wins by a margin that varies."""
    rng = np.random.default_rng(seed)
    candidates, truths = [], []
    for _ in range(n):
        truth = int(rng.integers(0, 5))
        scores = {t: float(rng.uniform(0.2, 0.6)) for t in range(5)}
        margin = rng.normal(0.1, 0.15)
        scores[truth] = max(scores.values()) + margin
        candidates.append(scores)
        truths.append(truth)
    return candidates, truths


def test_calibration_is_monotone_and_meets_its_precision() -> None:
    candidates, truths = _held_out(600)
    calibration = fit_calibration(candidates, truths, target_precision=0.95)
    grid = np.linspace(0, 1, 101)
    assert np.all(np.diff(calibration.confidence(grid)) >= -1e-12)
    assert calibration.heldout_precision_at_threshold >= 0.95
    assert 0 < calibration.heldout_coverage_at_threshold < 1
    # decisions: auto-accepted suggestions on the calibration coins meet the target
    accepted = correct = 0
    for scores, truth in zip(candidates, truths, strict=True):
        ranked = rank(scores, {t: [t] for t in scores}, calibration, 3)
        if decide(ranked, calibration) == "auto_accept":
            accepted += 1
            correct += ranked[0].type_id == truth
    assert accepted and correct / accepted >= 0.95


def test_far_from_everything_is_a_possible_new_type() -> None:
    calibration = Calibration(novelty_similarity=0.5, accept_threshold=0.9)
    far = rank({1: 0.3, 2: 0.1}, {1: [1], 2: [2]}, calibration, 2)
    assert decide(far, calibration) == "possible_new_type"
    assert decide([], calibration) == "possible_new_type"


def test_threshold_and_coverage_helpers() -> None:
    confidence = np.array([0.99, 0.95, 0.9, 0.8, 0.7])
    correct = np.array([True, True, False, True, False])
    assert accept_threshold(confidence, correct, 1.0) == 0.95
    assert coverage_at_precision(confidence, correct, 1.0) == 0.4
    assert coverage_at_precision(confidence, correct, 0.75) == 0.8
    assert accept_threshold(confidence, np.zeros(5, bool), 0.9) == 1.01
