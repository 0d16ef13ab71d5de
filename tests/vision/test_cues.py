"""Physical cues: apparent size in a fixed frame, metal colour and two metals, measured on
crops."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from coinlens.vision.cues import CUE_NAMES, crop_cues, cue_features, hue_difference, measure_cues


def _coin(side: int, diameter_share: float, rgb: tuple[int, int, int]) -> np.ndarray:
    """A flat metal disc with a relief ring on a grey table, in a ``side`` px crop."""
    picture = np.full((side, side, 3), 90, np.uint8)
    centre, radius = (side // 2, side // 2), round(side * diameter_share / 2)
    cv2.circle(picture, centre, radius, rgb, -1)
    cv2.circle(picture, centre, round(radius * 0.7), tuple(int(c * 0.8) for c in rgb), 2)
    return picture


def test_diameter_share_and_colour_are_measured() -> None:
    copper = measure_cues(_coin(128, 0.6, (184, 115, 51)), framed=True)
    gold = measure_cues(_coin(128, 0.8, (212, 175, 55)), framed=True)
    assert copper.shape == (len(CUE_NAMES),)
    assert copper[0] == pytest.approx(0.6, abs=0.04)
    assert gold[0] == pytest.approx(0.8, abs=0.04)
    assert copper[2] > gold[2] + 5  # copper is redder (a*)
    assert gold[1] > copper[1]  # and darker than Nordic gold (L*)


def test_a_crop_cut_to_the_coin_has_no_size_cue() -> None:
    cues = crop_cues(np.stack([_coin(128, 0.7, (200, 160, 60))] * 2), [False, True])
    assert np.isnan(cues[0, 0]) and not np.isnan(cues[1, 0])
    assert np.allclose(cues[0, 1:], cues[1, 1:])  # colour either way


def test_nothing_round_still_gives_a_colour() -> None:
    flat = np.full((96, 96, 3), (120, 60, 30), np.uint8)
    cues = measure_cues(flat, framed=True)
    assert np.isnan(cues[0])
    assert not np.isnan(cues[1:]).any()


def test_real_euro_cents_order_by_size_and_split_by_metal(data_root: Path) -> None:
    """On phone crops of one photographer, 1 cent < 10 cent < 2 euro in apparent size, and the
    copper cents are redder than the Nordic-gold ones."""
    from PIL import Image

    medians = {}
    for label in ("1c", "10c", "2e", "5c", "20c"):
        paths = sorted((data_root / "euro-kaa" / "train" / label).glob("*.jpg"))[:20]
        crops = np.stack(
            [np.asarray(Image.open(p).convert("RGB").resize((128, 128))) for p in paths]
        )
        medians[label] = np.nanmedian(crop_cues(crops, [True] * len(crops)), axis=0)
    assert medians["1c"][0] < medians["10c"][0] < medians["2e"][0]
    assert medians["5c"][2] > medians["20c"][2] + 5


def test_features_are_size_hue_and_two_tone() -> None:
    copper = measure_cues(_coin(128, 0.6, (184, 115, 51)), framed=True)
    gold = measure_cues(_coin(128, 0.8, (212, 175, 55)), framed=True)
    grey = measure_cues(_coin(128, 0.7, (150, 150, 150)), framed=True)
    features = cue_features(np.stack([copper, gold, grey]))
    assert features.shape == (3, 3)
    assert features[0, 0] == copper[0]  # the diameter share as measured
    assert 35 < features[0, 1] < features[1, 1] - 10  # copper's hue is redder than gold's
    assert np.isnan(features[2, 1])  # grey metal has no hue
    assert hue_difference(170.0, -170.0) == -20.0  # the short way round
    # cues measured before the two-tone gap (four columns) have none
    assert np.isnan(cue_features(np.stack([copper[:4], gold[:4]]))[:, 2]).all()


GOLD, SILVER = (212, 175, 55), (175, 175, 170)


def _bimetallic(ring: tuple[int, int, int], core: tuple[int, int, int]) -> np.ndarray:
    """A coin whose core (0.7 of its radius) is struck in another metal than its ring."""
    picture = _coin(128, 0.8, ring)
    cv2.circle(picture, (64, 64), round(128 * 0.8 / 2 * 0.7), core, -1)
    return picture


def test_two_metals_show_as_the_rings_chroma_minus_the_cores() -> None:
    """A 1 euro (gold ring, silver core) reads positive, a 2 euro (silver ring, gold core)
    negative, a coin of one metal, whatever the metal, near zero."""
    one_euro = measure_cues(_bimetallic(GOLD, SILVER), framed=False)
    two_euro = measure_cues(_bimetallic(SILVER, GOLD), framed=False)
    gold = measure_cues(_coin(128, 0.8, GOLD), framed=False)
    copper = measure_cues(_coin(128, 0.6, (184, 115, 51)), framed=False)
    gaps = cue_features(np.stack([one_euro, two_euro, gold, copper]))[:, 2]
    assert gaps[0] > 30 and gaps[1] < -30
    assert np.abs(gaps[2:]).max() < 3


def test_real_bimetallic_euros_are_told_from_each_other_and_from_one_metal(
    data_root: Path,
) -> None:
    """Phone crops: the 1 euro's gap is positive, the 2 euro's negative, the 10 cent's (which
    the embedding sometimes takes for a 1 euro) near zero."""
    from PIL import Image

    medians = {}
    for label in ("1e", "2e", "10c"):
        paths = sorted((data_root / "euro-kaa" / "test" / label).glob("*.jpg"))[:20]
        crops = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in paths])
        medians[label] = np.nanmedian(cue_features(crop_cues(crops, [False] * 20))[:, 2])
    assert medians["1e"] > 4 and medians["2e"] < -4 and abs(medians["10c"]) < 2
