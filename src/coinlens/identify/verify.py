"""Re-ranking a shortlist by geometric verification (keypoints + RANSAC), where it is uncertain.

The global embedding's shortlist is re-scored: each candidate reference gains up to
``VERIFY_WEIGHT`` in similarity with the number of keypoint matches that agree on one rotation,
scale and shift. This is how instance retrieval reaches its best precision; it matters most for
types with few references and for the same coin photographed twice. It costs a few milliseconds
per candidate, so it runs only where the embedding alone is not confident.
"""

from __future__ import annotations

import io
from collections import OrderedDict
from collections.abc import Callable

import numpy as np
from PIL import Image as PILImage

from coinlens.vision.keypoints import FEATURE_SIZE, Keypoints, inliers_many, keypoints

VERIFY_WEIGHT = 0.5
MIN_INLIERS = 8  # below this, matches are chance
FULL_INLIERS = 40  # at or above this, the full weight
SHORTLIST = 30
CONFIDENT = 0.98  # top-type probability above which verification is skipped


def decode_crop(data: bytes) -> np.ndarray:
    """A stored crop (JPEG bytes) as RGB at the keypoint resolution."""
    image = PILImage.open(io.BytesIO(data)).convert("RGB")
    image.thumbnail((FEATURE_SIZE, FEATURE_SIZE))
    return np.asarray(image)


def boost(count: int) -> float:
    return VERIFY_WEIGHT * float(
        np.clip((count - MIN_INLIERS) / (FULL_INLIERS - MIN_INLIERS), 0.0, 1.0)
    )


class KeypointVerifier:
    """Keypoints of references computed once (bounded cache), matched against each query."""

    def __init__(
        self,
        load_reference: Callable[[int], np.ndarray],
        *,
        shortlist: int = SHORTLIST,
        confident: float = CONFIDENT,
        cache_size: int = 20_000,
    ) -> None:
        self._load = load_reference
        self.shortlist = shortlist
        self.confident = confident
        self._cache: OrderedDict[int, Keypoints] = OrderedDict()
        self._cache_size = cache_size
        self.verified = 0

    def reference(self, image_id: int) -> Keypoints:
        found = self._cache.get(image_id)
        if found is None:
            found = keypoints(self._load(image_id))
            self._cache[image_id] = found
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(image_id)
        return found

    def rescore(
        self, query: np.ndarray, similarities: np.ndarray, image_ids: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Similarities of the shortlist raised by their inlier counts, re-sorted."""
        self.verified += 1
        query_points = keypoints(query)
        adjusted = similarities.astype(np.float32).copy()
        positions = [p for p in range(min(self.shortlist, len(image_ids))) if image_ids[p] >= 0]
        references = [self.reference(int(image_ids[p])) for p in positions]
        for position, count in zip(positions, inliers_many(query_points, references), strict=True):
            adjusted[position] += boost(count)
        order = np.argsort(-adjusted, kind="stable")
        return adjusted[order], image_ids[order]
