"""Physical cues a curator reads at a glance: the coin's apparent size, its metal's colour and
whether it is struck in two metals, measured on a stored crop, so that types sharing a design
(the Finnish euro cents' lion) are told apart by module and metal. What each measures, and why
the hue angle: docs/how-it-works/pipeline.md, "Physical cues".
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np

CUE_NAMES = ("diameter", "L", "a", "b", "two_tone")
FEATURE_NAMES = ("diameter", "hue", "two_tone")
SIZE_FEATURE = 0
HUE_FEATURE = 1
TWO_TONE_FEATURE = 2
CHROMA_MIN = 6.0  # a*b* distance from grey below which a hue is noise (silver, nickel, steel)
# px: cues are measured on the crop shrunk to this side. At 128 px the rim is found in half the
# time it takes at 160 px, and euro-kaa's denominations are told apart by diameter as well (test
# crops, nearest diameter among the same metal: copper 0.953 against 0.957, Nordic gold 0.715
# against 0.631).
WORK_SIDE = 128
# Bumped whenever cues are measured differently, so that cues stored with references (the index)
# are measured again rather than compared with differently measured ones. 1: at 160 px; 2:
# without the two-tone gap.
CUE_VERSION = 3
# px: training finds the rim (outside it, a crop's background is swapped) at the finer side every
# measured training used; it runs once per crop per training, so speed does not matter there.
CIRCLE_SIDE = 160
INNER_DISC = 0.8  # share of the radius whose colour is the metal's
# Shares of the radius: a euro's core reaches 0.70 (1 euro) or 0.73 (2 euro) of it; the ring's
# band stops short of the rim's shadow, the core's short of the seam.
CORE_DISC = 0.5
RING_BAND = (0.78, 0.93)
EDGE_SHARE = 0.7  # a rim candidate needs this share of the strongest circle's edge support


def _edge_support(gradient: np.ndarray, cx: float, cy: float, r: float) -> float:
    """Mean gradient magnitude along a circle: how much of an edge it really follows."""
    angles = np.linspace(0, 2 * np.pi, 72, endpoint=False)
    xs = np.clip(np.round(cx + r * np.cos(angles)).astype(int), 0, gradient.shape[1] - 1)
    ys = np.clip(np.round(cy + r * np.sin(angles)).astype(int), 0, gradient.shape[0] - 1)
    return float(gradient[ys, xs].mean())


def _central_circle(gray: np.ndarray) -> tuple[float, float, float] | None:
    """The coin's rim in a crop centred on it, as (cx, cy, r) in its pixels.

    Of the circles near the middle, the largest one whose edge is nearly as strong as the
    strongest: an inner ring (a bimetallic coin's core, a beaded border) is smaller, a
    neighbour's arc is not central.
    """
    side = min(gray.shape)
    blurred = cv2.medianBlur(gray, 5)
    circles = cv2.HoughCircles(
        blurred,
        cv2.HOUGH_GRADIENT_ALT,
        dp=1.5,
        minDist=4,
        param1=150,
        param2=0.6,
        minRadius=int(side * 0.2),
        maxRadius=int(side * 0.45),  # a crop's margin keeps the coin inside 0.43 of its side
    )
    if circles is None:
        return None
    circles = circles[0]
    offset = np.hypot(circles[:, 0] - gray.shape[1] / 2, circles[:, 1] - gray.shape[0] / 2)
    central = circles[offset < 0.15 * side]
    if len(central) == 0:
        return None
    gradient = np.hypot(cv2.Sobel(blurred, cv2.CV_32F, 1, 0), cv2.Sobel(blurred, cv2.CV_32F, 0, 1))
    support = np.array([_edge_support(gradient, *circle) for circle in central])
    strong = central[support >= EDGE_SHARE * support.max()]
    cx, cy, r = strong[np.argmax(strong[:, 2])]
    return float(cx), float(cy), float(r)


def _at_work_side(
    pixels: np.ndarray, side: int = WORK_SIDE
) -> tuple[np.ndarray, tuple[float, float, float] | None]:
    """The crop shrunk to ``side`` (never enlarged) and its coin's rim there, if found."""
    scale = min(1.0, side / max(pixels.shape[:2]))
    if scale < 1.0:
        size = (round(pixels.shape[1] * scale), round(pixels.shape[0] * scale))
        pixels = cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)
    pixels = np.ascontiguousarray(pixels)
    return pixels, _central_circle(cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY))


def _each_crop(measure: Callable[..., np.ndarray], crops: np.ndarray, *args) -> np.ndarray:
    """``measure`` of every crop (with its element of each of ``args``), threaded for batches:
    OpenCV frees the GIL."""
    if len(crops) < 8:
        return np.stack([measure(*row) for row in zip(crops, *args, strict=True)])
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        return np.stack(list(pool.map(measure, crops, *args)))


def measure_cues(pixels: np.ndarray, framed: bool) -> np.ndarray:
    """Cues of one (H, W, 3) uint8 RGB crop, in ``CUE_NAMES`` order (NaN where not measured)."""
    pixels, circle = _at_work_side(pixels)
    side = min(pixels.shape[:2])
    cues = np.full(len(CUE_NAMES), np.nan, dtype=np.float32)
    if circle is None:  # colour of the central disc the crop is centred on
        cx, cy, r = pixels.shape[1] / 2, pixels.shape[0] / 2, side * 0.4
    else:
        cx, cy, r = circle
        if framed:
            cues[0] = 2 * r / side
    ys, xs = np.mgrid[0 : pixels.shape[0] : 2, 0 : pixels.shape[1] : 2]  # every other pixel
    radius = np.hypot(xs - cx, ys - cy) / r
    lab = cv2.cvtColor(np.ascontiguousarray(pixels[::2, ::2]), cv2.COLOR_RGB2LAB)
    inside = radius < INNER_DISC
    if inside.any():
        cues[1:4] = np.median(lab[inside], axis=0)
    core, ring = radius < CORE_DISC, (radius > RING_BAND[0]) & (radius < RING_BAND[1])
    if core.any() and ring.any():
        ring_colour, core_colour = np.median(lab[ring], axis=0), np.median(lab[core], axis=0)
        cues[4] = chroma(ring_colour) - chroma(core_colour)
    return cues


def chroma(lab: np.ndarray) -> np.ndarray:
    """Distance from grey in the a*b* plane of OpenCV 8-bit CIELAB colours (..., 3): what the
    hue needs enough of, and what tells a gold ring from a silver core."""
    lab = np.asarray(lab, dtype=np.float32)
    return np.hypot(lab[..., 1] - 128.0, lab[..., 2] - 128.0)


def cue_features(cues: np.ndarray) -> np.ndarray:
    """(N, 3) features scored from (N, 5) cues: diameter share, hue angle in degrees and the
    two-tone gap (NaN where not measured, where the metal is too grey to have a hue, or where
    the cues predate the gap: four columns)."""
    cues = np.atleast_2d(np.asarray(cues, dtype=np.float32))
    a, b = cues[:, 2] - 128.0, cues[:, 3] - 128.0
    with np.errstate(invalid="ignore"):
        hue = np.degrees(np.arctan2(b, a))
        hue = np.where(chroma(cues[:, 1:4]) >= CHROMA_MIN, hue, np.nan)
    two_tone = cues[:, 4] if cues.shape[1] > 4 else np.full(len(cues), np.nan, np.float32)
    return np.column_stack([cues[:, 0], hue, two_tone]).astype(np.float32)


def hue_difference(hue: np.ndarray | float, other: np.ndarray | float) -> np.ndarray:
    """Signed angle from ``other`` to ``hue`` in degrees, wrapped to [-180, 180)."""
    return (np.asarray(hue) - np.asarray(other) + 180.0) % 360.0 - 180.0


def _circle_share(pixels: np.ndarray) -> np.ndarray:
    pixels, circle = _at_work_side(pixels, CIRCLE_SIDE)
    height, width = pixels.shape[:2]
    if circle is None:
        return np.array([0.5, 0.5, 0.5], np.float32)
    cx, cy, r = circle
    return np.array([cx / width, cy / height, r / min(width, height)], np.float32)


def coin_circles(crops: np.ndarray) -> np.ndarray:
    """(N, 3) centre x, centre y and radius of the coin's rim in each (N, H, W, 3) crop, as
    shares of the crop's side; (0.5, 0.5, 0.5), the inscribed circle, where none is found."""
    if len(crops) == 0:
        return np.zeros((0, 3), np.float32)
    return _each_crop(_circle_share, crops)


def crop_cues(crops: np.ndarray, framed: np.ndarray | list[bool]) -> np.ndarray:
    """(N, 4) cues of an (N, H, W, 3) batch of crops; ``framed[i]``: crop i is a fixed window."""
    if len(crops) == 0:
        return np.zeros((0, len(CUE_NAMES)), np.float32)
    return _each_crop(measure_cues, crops, [bool(f) for f in framed])
