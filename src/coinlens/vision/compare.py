"""Two coin crops side by side for a person to judge: the reference turned, scaled and shifted
onto the query by the keypoint transform verification found, and the agreeing matches drawn.

The transform is the similarity (rotation, scale, shift) that ``keypoints`` fits with RANSAC:
two photos of one coin, or of coins from one die, differ by exactly that.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image as PILImage
from PIL import ImageOps

from coinlens.vision.keypoints import FEATURE_SIZE, _ratio_matches, keypoints, similarity_transform
from coinlens.vision.load import to_rgb8

COMPARE_SIZE = 480  # px, the long side both crops are shown at
MIN_ALIGNED = 8  # agreeing matches from which the alignment is shown as found
DRAWN_MATCHES = 60


@dataclass(frozen=True)
class Comparison:
    query_jpeg: bytes
    reference_jpeg: bytes  # the reference as photographed, at the query's size
    aligned_jpeg: bytes | None  # the reference in the query's frame; None: no alignment found
    matches_jpeg: bytes  # both crops side by side, the agreeing matches drawn
    matches: int  # ratio-test matches
    inliers: int  # of them, agreeing with one similarity transform
    rotation_degrees: float | None
    scale: float | None


def _display(data: bytes) -> np.ndarray:
    image = PILImage.open(io.BytesIO(data))
    image = to_rgb8(ImageOps.exif_transpose(image) or image)
    image.thumbnail((COMPARE_SIZE, COMPARE_SIZE))
    if max(image.size) < COMPARE_SIZE:  # small crops shown at the same size as large ones
        factor = COMPARE_SIZE / max(image.size)
        image = image.resize((round(image.width * factor), round(image.height * factor)))
    return np.asarray(image)


def _jpeg(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    PILImage.fromarray(array).save(out, format="JPEG", quality=88)
    return out.getvalue()


def compare_crops(query: bytes, reference: bytes) -> Comparison:
    """The two encoded crops at one size, aligned where enough keypoint matches agree."""
    q_image, r_image = _display(query), _display(reference)
    q_points, r_points = keypoints(q_image), keypoints(r_image)
    to_display = COMPARE_SIZE / FEATURE_SIZE
    matched = inliers = 0
    transform = None
    pairs: list[tuple[np.ndarray, np.ndarray]] = []
    if len(q_points) >= 4 and len(r_points) >= 4:
        ((q_rows, r_rows),) = _ratio_matches(q_points, [r_points], 0.8)
        matched = len(q_rows)
        if matched >= 4:
            source = r_points.points[r_rows] * to_display
            target = q_points.points[q_rows] * to_display
            transform, kept = similarity_transform(
                source, target, COMPARE_SIZE * 0.02, iterations=2000, confidence=0.99
            )
            inliers = int(kept.sum())
            pairs = list(zip(target[kept], source[kept], strict=True))
    aligned = rotation = scale = None
    if transform is not None and inliers >= MIN_ALIGNED:
        height, width = q_image.shape[:2]
        aligned = _jpeg(
            cv2.warpAffine(r_image, transform, (width, height), borderValue=(238, 238, 238))
        )
        scale = float(math.hypot(transform[0, 0], transform[1, 0]))
        rotation = float(math.degrees(math.atan2(transform[1, 0], transform[0, 0])))
    return Comparison(
        query_jpeg=_jpeg(q_image),
        reference_jpeg=_jpeg(r_image),
        aligned_jpeg=aligned,
        # the agreeing matches, where they are enough to align: a few chance agreements drawn
        # as lines would read as evidence
        matches_jpeg=_jpeg(
            _draw_matches(q_image, r_image, pairs[:DRAWN_MATCHES] if aligned else [])
        ),
        matches=matched,
        inliers=inliers,
        rotation_degrees=rotation,
        scale=scale,
    )


def _draw_matches(
    query: np.ndarray, reference: np.ndarray, pairs: list[tuple[np.ndarray, np.ndarray]]
) -> np.ndarray:
    gap = 12
    height = max(query.shape[0], reference.shape[0])
    canvas = np.full((height, query.shape[1] + gap + reference.shape[1], 3), 255, np.uint8)
    canvas[: query.shape[0], : query.shape[1]] = query
    offset = query.shape[1] + gap
    canvas[: reference.shape[0], offset:] = reference
    for (qx, qy), (rx, ry) in pairs:
        start, end = (int(qx), int(qy)), (int(rx) + offset, int(ry))
        cv2.line(canvas, start, end, (40, 200, 90), 1, cv2.LINE_AA)
        cv2.circle(canvas, start, 3, (255, 212, 0), -1, cv2.LINE_AA)
        cv2.circle(canvas, end, 3, (255, 212, 0), -1, cv2.LINE_AA)
    return canvas
