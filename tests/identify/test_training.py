"""Training's calibration fits the cue weights on held-out coins; the colour weights must also
hold when the same coins are photographed under another light."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from coinlens.identify.engine import CropRef
from coinlens.identify.scoring import Calibration
from coinlens.identify.training import LIGHTING_DRAWS, fit_scoring, relit_coins
from coinlens.index import ReferenceIndex
from coinlens.storage import LocalStore
from coinlens.vision.cues import crop_cues

SIDE = 96


def _coin(hue: float, rng: np.random.Generator, chroma: float = 30.0) -> np.ndarray:
    """A plain disc of the given CIELAB hue (degrees) on a grey table, with sensor noise."""
    angle = np.radians(hue)
    lab = np.array([150, 128 + chroma * np.cos(angle), 128 + chroma * np.sin(angle)], np.uint8)
    colour = cv2.cvtColor(lab[None, None], cv2.COLOR_LAB2RGB)[0, 0].astype(np.float32)
    crop = np.full((SIDE, SIDE, 3), 90.0, np.float32)
    yy, xx = np.mgrid[:SIDE, :SIDE]
    crop[(xx - SIDE / 2) ** 2 + (yy - SIDE / 2) ** 2 < (0.4 * SIDE) ** 2] = colour
    return np.clip(crop + rng.normal(0, 3, crop.shape), 0, 255).astype(np.uint8)


def _bimetallic(
    hue: float, ring_chroma: float, core_chroma: float, rng: np.random.Generator
) -> np.ndarray:
    """A disc whose core (0.7 of its radius) has another chroma than its ring (0: silver)."""
    crop = _coin(hue, rng, ring_chroma)
    core = _coin(hue, rng, core_chroma)
    yy, xx = np.mgrid[:SIDE, :SIDE]
    inner = (xx - SIDE / 2) ** 2 + (yy - SIDE / 2) ** 2 < (0.28 * SIDE) ** 2
    crop[inner] = core[inner]
    return crop


def _fitted(
    make_crop: Callable[[int, np.random.Generator], np.ndarray], tmp_path: Path
) -> tuple[Calibration, Calibration]:
    """Scoring fitted on held-out coins as photographed, and under other lightings, for two
    types drawn by ``make_crop(type, rng)`` whose designs are alike on a third of the coins."""
    rng = np.random.default_rng(0)
    store = LocalStore(tmp_path / f"store{len(list(tmp_path.iterdir()))}")
    directions = np.eye(2, 16, dtype=np.float32)

    def coins(count: int, first_id: int) -> tuple[list[CropRef], np.ndarray, np.ndarray]:
        refs, vectors, crops = [], [], []
        for n in range(count):
            type_id = n % 2
            crop = make_crop(type_id, rng)
            key = f"crops/{first_id + n}.png"
            buffer = io.BytesIO()
            Image.fromarray(crop).save(buffer, format="PNG")
            store.put(key, buffer.getvalue())
            refs.append(CropRef(first_id + n, first_id + n, "unknown", key, True, key, type_id))
            if rng.random() < 0.3:  # the design does not tell them apart (one die, two metals)
                vectors.append(directions.sum(axis=0) + rng.normal(0, 0.05, 16))
            else:
                vectors.append(directions[type_id] + rng.normal(0, 0.3, 16))
            crops.append(crop)
        vectors = np.array(vectors, np.float32)
        return refs, vectors / np.linalg.norm(vectors, axis=1, keepdims=True), np.stack(crops)

    references, ref_vectors, ref_crops = coins(20, 0)
    index = ReferenceIndex(16)
    index.add(
        np.arange(20),
        ref_vectors,
        np.array([r.type_id for r in references]),
        np.arange(20),
        [r.sha256 for r in references],
        crop_cues(ref_crops, [False] * 20),
    )
    heldout, vectors, crops = coins(80, 100)
    groups = [[row] for row in range(len(heldout))]
    truths = [r.type_id for r in heldout]
    cues = crop_cues(crops, [False] * len(crops))
    assert np.isfinite(cues[:, 1:]).all()  # every coin's colours measured
    as_photographed = fit_scoring(index, vectors, groups, truths, cues)
    relit = [lit.cues for lit in relit_coins(store, heldout, SIDE)]
    assert len(relit) == LIGHTING_DRAWS and all(r.shape == cues.shape for r in relit)
    under_other_light = fit_scoring(index, vectors, groups, truths, cues, None, relit)
    return as_photographed, under_other_light


def _colour_weights(hues: tuple[float, float], tmp_path: Path) -> tuple[float, float]:
    """Colour weight fitted as photographed and under other lightings, for two types whose
    metals have ``hues``."""
    as_photographed, under_other_light = _fitted(
        lambda type_id, rng: _coin(hues[type_id] + rng.normal(0, 0.5), rng), tmp_path
    )
    return as_photographed.colour_weight, under_other_light.colour_weight


def test_colour_weight_holds_under_other_lightings(tmp_path: Path) -> None:
    # metals a few degrees of hue apart: colour separates them in the references' light only
    nominal, relit = _colour_weights((80.0, 84.0), tmp_path)
    assert nominal > 0 and relit < nominal
    # copper against a blue patina: another light does not move one into the other
    nominal, relit = _colour_weights((60.0, 240.0), tmp_path)
    assert relit > 0


def test_two_tone_weight_is_fitted_where_two_metals_tell_lookalikes_apart(tmp_path: Path) -> None:
    """One design struck as a 1 euro (gold ring, silver core) and as a 2 euro (silver ring, gold
    core), the same hue overall: the two-tone gap tells them apart under any light, and the fit
    weighs it; one-metal coins leave it at 0."""
    gold = 85.0

    def euro(type_id: int, rng: np.random.Generator) -> np.ndarray:
        return _bimetallic(gold, 30, 0, rng) if type_id == 0 else _bimetallic(gold, 0, 30, rng)

    as_photographed, under_other_light = _fitted(euro, tmp_path)
    assert as_photographed.two_tone_weight > 0 and under_other_light.two_tone_weight > 0
    one_metal, _ = _fitted(lambda type_id, rng: _coin(gold + 40 * type_id, rng), tmp_path)
    assert one_metal.two_tone_weight == 0


def test_type_depth_is_fitted_where_lookalikes_mislead() -> None:
    """Every held-out coin has one near-identical reference of the other type (one die struck
    in two metals); its own type has many close references. Averaging a type's nearest
    references wins there, and the fit finds it; without lookalikes the best one suffices."""
    rng = np.random.default_rng(2)
    directions = np.eye(2, 16, dtype=np.float32)

    def unit(rows: np.ndarray) -> np.ndarray:
        return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)

    truths = [n % 2 for n in range(40)]
    queries = unit(directions[truths] + rng.normal(0, 0.25, (40, 16)))
    references = unit(directions[[n % 2 for n in range(40)]] + rng.normal(0, 0.25, (40, 16)))
    lookalikes = unit(queries + rng.normal(0, 0.02, queries.shape))
    groups = [[row] for row in range(40)]
    cues = np.full((40, 4), np.nan, np.float32)

    def fitted_depth(with_lookalikes: bool) -> int:
        vectors = np.concatenate([references, lookalikes]) if with_lookalikes else references
        types = [n % 2 for n in range(40)] + [1 - t for t in truths] * with_lookalikes
        index = ReferenceIndex(16)
        ids = np.arange(len(vectors))
        index.add(ids, vectors, np.array(types), ids, [str(i) for i in ids])
        return fit_scoring(index, queries, groups, truths, cues).type_depth

    assert fitted_depth(with_lookalikes=True) > 1
    assert fitted_depth(with_lookalikes=False) == 1


def test_calibration_holds_under_other_lightings() -> None:
    """Held-out coins that, as photographed, are all right and close to their references would
    let anything through; re-lit, the ones that drift from every reference go wrong. Fitted on
    both, the calibration weighs similarity in, and a coin far from every reference goes to
    review however clear its margin; the held-out figures stay the coins' own."""
    from coinlens.identify.scoring import SIMILARITY_PRIOR, SIMILARITY_WEIGHTS, decide, rank
    from coinlens.identify.training import Relit, calibrate

    rng = np.random.default_rng(4)
    directions = np.eye(2, 16, dtype=np.float32)

    def unit(rows: np.ndarray) -> np.ndarray:
        return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)

    types = [n % 2 for n in range(40)]
    index = ReferenceIndex(16)
    ids = np.arange(40)
    references = unit(directions[types] + rng.normal(0, 0.1, (40, 16)))
    index.add(ids, references, np.array(types), ids, [str(i) for i in ids])
    heldout = [
        CropRef(100 + n, 100 + n, "unknown", f"c{n}", True, f"s{n}", n % 2) for n in range(60)
    ]
    truths = np.array([r.type_id for r in heldout])
    vectors = unit(directions[truths] + rng.normal(0, 0.1, (60, 16)))
    cues = np.full((60, 4), np.nan, np.float32)
    relit = []
    for _ in range(4):  # a cast that pulls some coins away from every reference
        drift = rng.random(60) < 0.4
        kept = directions[truths] + rng.normal(0, 0.1, (60, 16))
        lost = 0.3 * directions[truths] + 0.3 * directions[1 - truths]
        lost = lost + rng.normal(0, 0.3, (60, 16))
        relit.append(Relit(cues, unit(np.where(drift[:, None], lost, kept))))

    as_photographed, _ = calibrate(index, heldout, vectors, query_cues=cues, target_precision=0.98)
    under_other_light, scores = calibrate(
        index, heldout, vectors, query_cues=cues, target_precision=0.98, relit_queries=relit
    )
    assert under_other_light.similarity_weight in SIMILARITY_WEIGHTS
    assert under_other_light.similarity_weight > 0
    assert under_other_light.n_heldout == 60 and under_other_light.heldout_top1 == 1.0
    assert scores["top1"] == 1.0

    # as photographed every coin is right and near: nothing to fit, the prior weight stands
    assert as_photographed.similarity_weight == SIMILARITY_PRIOR

    # a clear margin far from every reference: reviewed, near at the same margin: accepted
    calibration = under_other_light
    calibration.novelty_similarity = 0.0  # the decision between accepting and reviewing
    for scores_of_types, decision in (
        ({0: 0.55, 1: 0.2}, "review"),
        ({0: 1.0, 1: 0.65}, "auto_accept"),
    ):
        suggestions = rank(scores_of_types, {0: [0], 1: [1]}, calibration, 2)
        assert decide(suggestions, calibration) == decision, (calibration, suggestions)
