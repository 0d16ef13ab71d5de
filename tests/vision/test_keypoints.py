"""Geometric verification tells the same coin, turned and rescaled, from a different coin."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from coinlens.vision import load_image
from coinlens.vision.keypoints import inliers, keypoints, root_sift

SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "euro-coins"


def _coin(name: str) -> Image.Image:
    return load_image(sorted((SAMPLE / "references" / name).glob("*.jpg"))[0].read_bytes()).rgb


def test_same_coin_rotated_and_rescaled_matches() -> None:
    coin = _coin("2e").resize((300, 300))
    turned = coin.rotate(70, resample=Image.Resampling.BILINEAR, fillcolor=(128, 128, 128))
    turned = turned.resize((220, 220))
    same = inliers(keypoints(np.asarray(coin)), keypoints(np.asarray(turned)))
    other = inliers(
        keypoints(np.asarray(coin)), keypoints(np.asarray(_coin("5c").resize((300, 300))))
    )
    assert same >= 15
    assert other < same / 2


def test_blank_images_have_no_keypoints_and_no_matches() -> None:
    blank = np.full((200, 200, 3), 127, np.uint8)
    assert len(keypoints(blank)) == 0
    assert inliers(keypoints(blank), keypoints(np.asarray(_coin("1e")))) == 0


def test_descriptors_are_root_sift_histograms() -> None:
    found = keypoints(np.asarray(_coin("1e").resize((300, 300))))
    assert len(found) > 50
    assert (found.descriptors >= 0).all()
    # square roots of L1-normalised histograms: unit length, so distances compare them alike
    np.testing.assert_allclose(np.linalg.norm(found.descriptors, axis=1), 1.0, atol=1e-4)
    histogram = np.array([[9.0, 0.0, 16.0, 0.0]])
    np.testing.assert_allclose(root_sift(histogram), [[0.6, 0.0, 0.8, 0.0]], atol=1e-6)
