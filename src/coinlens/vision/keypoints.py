"""Geometric verification: do two crops show the same coin (or die), by local features + RANSAC?

Global embeddings rank types well but can confuse coins of similar shape; SIFT keypoints matched
with Lowe's ratio test and filtered by a RANSAC similarity transform (rotation, scale, shift:
exactly how two photos of one coin differ) count the matches that agree geometrically. Many
inliers mean the same coin, or coins struck from the same dies, whatever the lighting or angle.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

FEATURE_SIZE = 320  # px, long side at which keypoints are found
MAX_FEATURES = 600


@dataclass(frozen=True)
class Keypoints:
    points: np.ndarray  # (K, 2) float32, pixel coordinates at FEATURE_SIZE
    descriptors: np.ndarray  # (K, 128) float32

    def __len__(self) -> int:
        return len(self.points)


_sift = None


def _detector():
    global _sift
    if _sift is None:
        _sift = cv2.SIFT_create(nfeatures=MAX_FEATURES, contrastThreshold=0.02)
    return _sift


def keypoints(crop: np.ndarray) -> Keypoints:
    """SIFT keypoints of an RGB uint8 crop (contrast-normalised grey, at FEATURE_SIZE)."""
    grey = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY) if crop.ndim == 3 else crop
    scale = FEATURE_SIZE / max(grey.shape)
    if scale != 1:
        grey = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    grey = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(4, 4)).apply(grey)
    found, descriptors = _detector().detectAndCompute(grey, None)
    if descriptors is None or not found:
        return Keypoints(np.zeros((0, 2), np.float32), np.zeros((0, 128), np.float32))
    points = np.array([k.pt for k in found], dtype=np.float32)
    return Keypoints(points, descriptors.astype(np.float32))


_matcher = cv2.BFMatcher(cv2.NORM_L2)


def inliers(a: Keypoints, b: Keypoints, ratio: float = 0.8) -> int:
    """Matches between ``a`` and ``b`` consistent with one similarity transform."""
    if len(a) < 4 or len(b) < 4:
        return 0
    pairs = _matcher.knnMatch(a.descriptors, b.descriptors, k=2)
    good = [m for m, *rest in pairs if rest and m.distance < ratio * rest[0].distance]
    if len(good) < 4:
        return 0
    source = a.points[[m.queryIdx for m in good]]
    target = b.points[[m.trainIdx for m in good]]
    _, mask = cv2.estimateAffinePartial2D(
        source,
        target,
        method=cv2.RANSAC,
        ransacReprojThreshold=FEATURE_SIZE * 0.02,
        maxIters=500,
        confidence=0.98,
    )
    return int(mask.sum()) if mask is not None else 0
