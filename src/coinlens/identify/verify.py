"""Re-ranking an uncertain shortlist by geometric verification (keypoints + RANSAC).

Candidates are lifted by how many keypoint matches agree on one rotation, scale and shift; in a
small collection the query's descriptors also vote over every reference; a side cut from a photo
of both sides is matched as that whole photo too. Why each: docs/how-it-works/pipeline.md,
"Keypoint verification".
"""

from __future__ import annotations

import io
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image as PILImage
from PIL import ImageOps

from coinlens.vision import encode_jpeg, to_rgb8
from coinlens.vision.keypoints import FEATURE_SIZE, Keypoints, inliers_many, keypoints

if TYPE_CHECKING:
    from coinlens.index import ReferenceIndex

VERIFY_WEIGHT = 0.5
MIN_INLIERS = 8  # below this, matches are chance
FULL_INLIERS = 40  # at or above this, the full weight
SHORTLIST = 30
CONFIDENT = 0.98  # top-type probability above which verification is skipped
VOTE_LIMIT = 1000  # references: up to this many, descriptors vote for candidates (see above)
VOTE_DESCRIPTORS = 256  # strongest descriptors per image that vote (query) or are voted for
VOTE_EXACT_BELOW = 20_000  # descriptors: a smaller pool is searched exactly
VOTE_PROBES = 8  # inverted lists searched per descriptor in a larger pool
VOTE_NEIGHBOURS = 4  # each query descriptor votes for the references of its nearest ones
VOTE_CANDIDATES = 30  # most voted references verified beside the shortlist (15: cash 0.868)


def decode_crop(data: bytes) -> np.ndarray:
    """A stored crop or photo (encoded bytes) as upright 8-bit RGB at the keypoint resolution."""
    image = PILImage.open(io.BytesIO(data))
    # A large JPEG decodes at a fraction of its size, but at twice the keypoint size at least, so
    # a proper resize makes the last step: a crop decoded straight at the keypoint size (the
    # JPEG's own 1/2 scaling of a 640 px crop) lost keypoint matches (cash coins, leave-one-out:
    # top-1 0.912 against 0.930 decoded whole).
    image.draft("RGB", (2 * FEATURE_SIZE, 2 * FEATURE_SIZE))
    image = to_rgb8(ImageOps.exif_transpose(image) or image)
    image.thumbnail((FEATURE_SIZE, FEATURE_SIZE))
    return np.asarray(image)


@dataclass(frozen=True)
class CoinViews:
    """What one coin side is verified on: its crop and, for a side cut from a photo of both
    sides (layout ``pair``), that whole photo."""

    crop: np.ndarray
    picture: np.ndarray | None = None


def keypoint_photo(image: PILImage.Image) -> bytes:
    """A pair photo as JPEG at the keypoint resolution, as an upload or an eval set carries it,
    resampled as ``decode_crop`` resamples a stored photo (with Lanczos and an optimised JPEG
    instead, as for review thumbnails, cash leave-one-out top-1 moved from 0.939 to 0.921:
    keypoints are that sensitive)."""
    whole = image.copy()
    whole.thumbnail((FEATURE_SIZE, FEATURE_SIZE))
    return encode_jpeg(whole, quality=90)


def decode_views(crop: bytes, picture: bytes | None = None) -> CoinViews:
    """``CoinViews`` from a stored crop and, for one side of a pair photo, the stored photo."""
    return CoinViews(decode_crop(crop), decode_crop(picture) if picture is not None else None)


@dataclass(frozen=True)
class ViewKeypoints:
    """Keypoints of ``CoinViews``: the crop's, and the whole photo's where there is one."""

    crop: Keypoints
    picture: Keypoints | None = None


def views_keypoints(views: CoinViews | np.ndarray) -> ViewKeypoints:
    """Keypoints of each view (a bare array is a crop alone)."""
    if not isinstance(views, CoinViews):
        views = CoinViews(views)
    picture = keypoints(views.picture) if views.picture is not None else None
    return ViewKeypoints(keypoints(views.crop), picture)


def view_inliers(query: ViewKeypoints, references: list[ViewKeypoints]) -> list[int]:
    """Inliers of ``query`` with each reference: crop against crop and, where both come from
    pair photos, photo against photo; the larger count."""
    counts = inliers_many(query.crop, [r.crop for r in references])
    if query.picture is None:
        return counts
    paired = [j for j, r in enumerate(references) if r.picture is not None]
    if paired:
        found = inliers_many(query.picture, [references[j].picture for j in paired])
        for j, count in zip(paired, found, strict=True):
            counts[j] = max(counts[j], count)
    return counts


def verified_share(count: int) -> float:
    """How far ``count`` geometrically consistent matches prove the same coin or die: 0 at
    ``MIN_INLIERS`` (chance) or fewer, 1 at ``FULL_INLIERS`` or more."""
    return float(np.clip((count - MIN_INLIERS) / (FULL_INLIERS - MIN_INLIERS), 0.0, 1.0))


def lifted(similarity: float, best: float, count: int, weight: float = VERIFY_WEIGHT) -> float:
    """A reference's similarity after verification with ``count`` inliers: fully verified, it
    stands level with the ``best`` similarity of the query's neighbours plus ``weight``; partly
    verified, part way there. The same coin rescanned or cropped otherwise can lie far down the
    embedding's ranking (cash coins: 30 inliers, outside the 100 nearest), and a fixed bonus
    would not bring it back."""
    return similarity + verified_share(count) * (max(best - similarity, 0.0) + weight)


def _descriptor_pool(descriptors: np.ndarray) -> Any:
    """A faiss index of SIFT descriptors: exact when small, else inverted lists over about
    sqrt(N) k-means cells (a vote needs near neighbours, not exact ones: 30 ms, not a second)."""
    import faiss

    if len(descriptors) < VOTE_EXACT_BELOW:
        pool = faiss.IndexFlatL2(128)
    else:
        cells = int(np.sqrt(len(descriptors)))
        pool = faiss.index_factory(128, f"IVF{cells},Flat")
        pool.cp.max_points_per_centroid = 64  # k-means on a sample: seconds, not a minute
        pool.train(descriptors)
        pool.nprobe = VOTE_PROBES
    pool.add(descriptors)
    return pool


class KeypointVerifier:
    """Keypoints of references computed once (bounded cache), matched against each query.
    ``load_reference(image_id)``: the reference's ``CoinViews`` (or its crop alone)."""

    def __init__(
        self,
        load_reference: Callable[[int], CoinViews | np.ndarray],
        *,
        shortlist: int = SHORTLIST,
        confident: float = CONFIDENT,
        cache_size: int = 20_000,
        vote_limit: int = VOTE_LIMIT,
    ) -> None:
        self._load = load_reference
        self.shortlist = shortlist
        self.confident = confident
        self._cache: OrderedDict[int, ViewKeypoints] = OrderedDict()
        self._cache_size = cache_size
        self.verified = 0
        self.vote_limit = vote_limit
        self._pool: tuple[int, int, Any, np.ndarray] | None = None  # (id(index), generation, ...)

    def reference(self, image_id: int) -> ViewKeypoints:
        found = self._cache.get(image_id)
        if found is None:
            found = views_keypoints(self._load(image_id))
            self._cache[image_id] = found
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(image_id)
        return found

    def _voting_pool(self, index: ReferenceIndex) -> tuple[Any, np.ndarray] | None:
        """A faiss index of every reference's strongest descriptors and the image id of each
        row (None above ``vote_limit`` references); rebuilt when the reference index changes."""
        if len(index.type_of) > self.vote_limit:
            return None
        if self._pool is None or self._pool[:2] != (id(index), index.generation):
            ids = sorted(index.type_of)
            descriptors = [self.reference(i).crop.descriptors[:VOTE_DESCRIPTORS] for i in ids]
            owners = np.concatenate(
                [np.full(len(d), i, np.int64) for i, d in zip(ids, descriptors, strict=True)]
                or [np.zeros(0, np.int64)]
            )
            pool = _descriptor_pool(
                np.concatenate(descriptors).astype(np.float32)
                if len(owners)
                else np.zeros((0, 128), np.float32)
            )
            self._pool = (id(index), index.generation, pool, owners)
        return self._pool[2], self._pool[3]

    def voted(
        self, query: Keypoints, index: ReferenceIndex, allowed: Callable[[int], bool]
    ) -> list[int]:
        """The references (``allowed`` ones) most of the query's descriptors lie nearest to."""
        found = self._voting_pool(index)
        if found is None or len(query) == 0 or found[0].ntotal == 0:
            return []
        pool, owners = found
        descriptors = np.ascontiguousarray(query.descriptors[:VOTE_DESCRIPTORS])
        _, rows = pool.search(descriptors, min(VOTE_NEIGHBOURS, pool.ntotal))
        votes: dict[int, int] = {}
        for neighbours in rows:
            for image_id in {int(owners[r]) for r in neighbours if r >= 0}:
                votes[image_id] = votes.get(image_id, 0) + 1
        ranked = sorted(votes, key=lambda i: (-votes[i], i))
        return [i for i in ranked if allowed(i)][:VOTE_CANDIDATES]

    def rescore(
        self,
        query: CoinViews | np.ndarray,
        similarities: np.ndarray,
        image_ids: np.ndarray,
        *,
        extra: Callable[[Keypoints, set[int]], Iterable[tuple[int, float]]] | None = None,
        weight: float = VERIFY_WEIGHT,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Similarities of the shortlist raised by their inlier counts, re-sorted. ``query``: the
        query side's ``CoinViews`` (or its crop alone). ``extra``
        (the query's keypoints, the shortlist's ids) -> more (image id, similarity) candidates
        to verify and rank beside the shortlist (the descriptor vote's); ``weight``: the most
        a reference's similarity can gain."""
        self.verified += 1
        query_points = views_keypoints(query)
        adjusted = similarities.astype(np.float32).copy()
        image_ids = np.asarray(image_ids)
        positions = [p for p in range(min(self.shortlist, len(image_ids))) if image_ids[p] >= 0]
        if extra is not None:
            shortlisted = {int(image_ids[p]) for p in positions}
            more = [
                (i, s) for i, s in extra(query_points.crop, shortlisted) if i not in shortlisted
            ]
            if more:
                start = len(image_ids)
                image_ids = np.concatenate([image_ids, np.array([i for i, _ in more])])
                adjusted = np.concatenate([adjusted, np.array([s for _, s in more], np.float32)])
                positions += list(range(start, len(image_ids)))
        references = [self.reference(int(image_ids[p])) for p in positions]
        best = float(adjusted[positions].max()) if positions else 0.0
        for position, count in zip(positions, view_inliers(query_points, references), strict=True):
            adjusted[position] = lifted(float(adjusted[position]), best, count, weight)
        order = np.argsort(-adjusted, kind="stable")
        return adjusted[order], image_ids[order]
