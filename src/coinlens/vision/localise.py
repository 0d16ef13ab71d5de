"""Find the coins in a photo, so that backgrounds, scale bars and neighbours do not drive a match.

Three kinds of photo reach coinlens:

- a *crop*: one coin filling the frame, neighbours often intruding at the edges (phone crops, or a
  collection's own cut-outs); the coin is the circle nearest the centre, or the whole frame; a
  frame twice as long as it is wide holds two sides filling it, one square each;
- a *catalogue photo*: one coin, or its obverse and reverse side by side or stacked, on a plain
  background;
- a *tray*: many coins on paper, cloth or a table.

On a plain background the coins are separated from it by colour distance to the border colour
(connected components, touching coins split by Hough circles); without one, Hough circles alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

WORK_SIZE = 640  # long side, px, at which detection runs
TRAY_MIN_SIZE = 400  # px: smaller pictures are never trays
PAIR_FRAME = (1.85, 2.15)  # long side / short side of a crop that holds two sides


@dataclass(frozen=True)
class Box:
    """Where a coin is, in full-image pixels; ``round`` tells a circle from a knife or a bar."""

    x: int
    y: int
    w: int
    h: int
    round: bool = True

    @property
    def centre(self) -> tuple[float, float]:
        return self.x + self.w / 2, self.y + self.h / 2

    @property
    def size(self) -> int:
        return max(self.w, self.h)

    def as_dict(self) -> dict[str, int]:
        return {"x": self.x, "y": self.y, "w": self.w, "h": self.h}


@dataclass(frozen=True)
class Layout:
    """What a photo holds: ``kind`` is crop, single, pair (two sides) or tray, with a box per coin.

    For a pair the first box is the obverse (top or left, the catalogue convention).
    """

    kind: str
    boxes: tuple[Box, ...]


def _to_work(image: Image.Image) -> tuple[np.ndarray, float]:
    scale = min(1.0, WORK_SIZE / max(image.size))
    if scale < 1.0:
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.BILINEAR)
    return np.asarray(image.convert("RGB")), scale


def _border(pixels: np.ndarray, frac: float = 0.04) -> np.ndarray:
    h, w = pixels.shape[:2]
    m = max(2, int(min(h, w) * frac))
    return np.concatenate(
        [
            pixels[:m].reshape(-1, 3),
            pixels[-m:].reshape(-1, 3),
            pixels[:, :m].reshape(-1, 3),
            pixels[:, -m:].reshape(-1, 3),
        ]
    ).astype(np.float32)


def _plain_background(pixels: np.ndarray) -> np.ndarray | None:
    """The background colour if the border is mostly one colour, else None."""
    border = _border(pixels)
    colour = np.median(border, axis=0)
    near = np.linalg.norm(border - colour, axis=1) < 28
    return colour if near.mean() > 0.8 else None


def _hough(gray: np.ndarray, min_r: float, max_r: float) -> list[tuple[float, float, float]]:
    blurred = cv2.medianBlur(gray, 5)
    circles = cv2.HoughCircles(
        blurred,
        cv2.HOUGH_GRADIENT_ALT,
        dp=1.5,
        minDist=max(4.0, min_r * 1.6),
        param1=150,
        param2=0.75,
        minRadius=max(3, int(min_r)),
        maxRadius=max(4, int(max_r)),
    )
    if circles is None:
        return []
    return [tuple(map(float, c)) for c in circles[0]]


def _circle_box(cx: float, cy: float, r: float, scale: float) -> Box:
    x, y, d = (cx - r) / scale, (cy - r) / scale, 2 * r / scale
    return Box(round(x), round(y), round(d), round(d), True)


def _segment(pixels: np.ndarray, background: np.ndarray, scale: float) -> list[Box]:
    """Coins against a plain background: components of pixels far from the background colour."""
    h, w = pixels.shape[:2]
    distance = np.linalg.norm(pixels.astype(np.float32) - background, axis=2)
    distance = cv2.GaussianBlur(distance, (5, 5), 0)
    scaled = np.clip(distance * 2, 0, 255).astype(np.uint8)
    otsu, _ = cv2.threshold(scaled, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    mask = (scaled > max(otsu, 50)).astype(np.uint8)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, kernel, iterations=2)
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, kernel)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    min_area = h * w * 0.002
    found = []
    for contour in contours:
        area = cv2.contourArea(contour)
        if area < min_area:
            continue
        (cx, cy), r = cv2.minEnclosingCircle(contour)
        found.append((contour, area, cx, cy, r, area / (np.pi * r * r)))
    if not found:
        return []
    boxes: list[Box] = []
    round_radii = sorted(r for _, _, _, _, r, circ in found if circ > 0.7)
    typical = float(np.median(round_radii)) if round_radii else None
    gray = cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY)
    for contour, area, cx, cy, r, circularity in found:
        if circularity > 0.7:
            boxes.append(_circle_box(cx, cy, r, scale))
            continue
        # Touching coins: look for circles of the typical size inside the blob.
        x, y, bw, bh = cv2.boundingRect(contour)
        inner: list[tuple[float, float, float]] = []
        if typical is not None and area > 1.6 * np.pi * typical**2:
            pad = int(typical * 0.3)
            x0, y0 = max(0, x - pad), max(0, y - pad)
            patch = gray[y0 : y + bh + pad, x0 : x + bw + pad]
            inner = [
                (icx + x0, icy + y0, ir)
                for icx, icy, ir in _hough(patch, typical * 0.7, typical * 1.3)
                if cv2.pointPolygonTest(contour, (icx + x0, icy + y0), False) >= 0
            ]
        if len(inner) >= 2:
            boxes.extend(_circle_box(icx, icy, ir, scale) for icx, icy, ir in inner)
        else:  # a non-round object (knife or spade money, a bar): its bounding box
            boxes.append(
                Box(round(x / scale), round(y / scale), round(bw / scale), round(bh / scale), False)
            )
    return boxes


def _frame(pixels: np.ndarray, scale: float) -> Box:
    """A crop: the central square of the frame, kept whole.

    The frame of a crop is a fixed window around the coin, so the coin's size within it is a real
    clue (1, 2 and 5 cent national sides share a design and differ in size); re-cropping to the
    coin's edge would throw that away.
    """
    h, w = pixels.shape[:2]
    side = min(h, w)
    x, y = (w - side) / 2, (h - side) / 2
    return Box(round(x / scale), round(y / scale), round(side / scale), round(side / scale), True)


def _framed(pixels: np.ndarray, scale: float) -> Layout:
    """A crop: one coin in the central square, or, in a frame about twice as long as it is
    wide, two sides filling it, stacked or side by side (cash-coin thumbnails: the central
    square of a 47x100 picture cuts through both coins)."""
    h, w = pixels.shape[:2]
    side = min(h, w)
    if PAIR_FRAME[0] <= max(h, w) / side <= PAIR_FRAME[1]:
        size = round(side / scale)
        first = Box(0, 0, size, size, True)
        if h > w:
            second = Box(0, round((h - side) / scale), size, size, True)
        else:
            second = Box(round((w - side) / scale), 0, size, size, True)
        return Layout("pair", (first, second))
    return Layout("crop", (_frame(pixels, scale),))


def _fills_frame(box: Box, width: int, height: int) -> bool:
    """One centred coin taking most of a near-square picture: the picture is already a crop."""
    side = min(width, height)
    offset = np.hypot(box.centre[0] - width / 2, box.centre[1] - height / 2)
    squarish = max(width, height) < 1.3 * side
    return squarish and offset < 0.15 * side and box.size > 0.55 * side


def _pair(boxes: list[Box]) -> tuple[Box, Box] | None:
    """Two coins of about the same size side by side or stacked: obverse and reverse."""
    if len(boxes) != 2:
        return None
    a, b = sorted(boxes, key=lambda box: (box.centre[1], box.centre[0]))
    if max(a.size, b.size) > 1.35 * min(a.size, b.size):
        return None
    dx, dy = abs(a.centre[0] - b.centre[0]), abs(a.centre[1] - b.centre[1])
    if dy > dx:  # stacked: top is the obverse
        return (a, b) if dx < 0.5 * a.size else None
    left, right = sorted(boxes, key=lambda box: box.centre[0])
    return (left, right) if dy < 0.5 * a.size else None


def locate_coins(image: Image.Image) -> Layout:
    """Find the coins in ``image`` and say what kind of photo it is (see the module docstring)."""
    pixels, scale = _to_work(image)
    h, w = pixels.shape[:2]
    background = _plain_background(pixels)
    if background is None and max(image.size) < TRAY_MIN_SIZE:
        return _framed(pixels, scale)  # never a tray: no circles to look for
    if background is None:
        gray = cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY)
        side = min(h, w)
        # Many small circles on a textured table (a tray), or one coin filling a crop.
        small = [c for c in _hough(gray, side * 0.025, side * 0.16) if c[2] < side * 0.16]
        if len(small) >= 3:
            boxes = _suppress_nested([_circle_box(cx, cy, r, scale) for cx, cy, r in small])
            return Layout("tray", tuple(_reading_order(boxes)))
        return _framed(pixels, scale)
    boxes = _suppress_nested(_segment(pixels, background, scale))
    if not boxes:
        return _framed(pixels, scale)
    if len(boxes) == 1:
        if _fills_frame(boxes[0], image.width, image.height):
            return Layout("crop", (_frame(pixels, scale),))
        return Layout("single", (boxes[0],))
    pair = _pair(boxes)
    if pair is not None:
        return Layout("pair", pair)
    largest = max(box.size for box in boxes)
    boxes = [box for box in boxes if box.size > 0.35 * largest]  # specks, labels, dust
    if len(boxes) == 1:
        return Layout("single", (boxes[0],))
    if max(image.size) < TRAY_MIN_SIZE:  # a small picture is one coin with intruding neighbours
        return Layout("crop", (_frame(pixels, scale),))
    return Layout("tray", tuple(_reading_order(boxes)))


def _suppress_nested(boxes: list[Box]) -> list[Box]:
    """Drop a box whose centre lies well inside a larger one (the core of a bimetallic coin)."""
    kept: list[Box] = []
    for box in sorted(boxes, key=lambda b: b.size, reverse=True):
        cx, cy = box.centre
        if all(np.hypot(cx - k.centre[0], cy - k.centre[1]) > 0.45 * k.size for k in kept):
            kept.append(box)
    return kept


def _reading_order(boxes: list[Box]) -> list[Box]:
    """Top to bottom, then left to right within a row, so coin numbers are stable and findable."""
    if not boxes:
        return boxes
    row_height = float(np.median([box.size for box in boxes]))
    return sorted(boxes, key=lambda box: (round(box.centre[1] / row_height), box.centre[0]))


def coin_sides(layout: Layout, side: str = "unknown") -> list[tuple[str, Box]]:
    """The sides of one coin a photo shows, as (side, box).

    Two sides side by side or stacked give the obverse and the reverse, unless the curator already
    said which side the photo shows; a tray gives its largest coin; otherwise the coin found.
    """
    if layout.kind == "pair" and side in ("unknown", "both"):
        return [("obverse", layout.boxes[0]), ("reverse", layout.boxes[1])]
    if layout.kind == "tray":
        return [(side, max(layout.boxes, key=lambda box: box.size))]
    return [(side, layout.boxes[0])]


CROP_MARGIN = 0.08
CROP_MAX_SIZE = 640


def crop_side(box_size: int, max_size: int = CROP_MAX_SIZE) -> tuple[int, int]:
    """(side before resizing, side as stored) of the square crop ``crop_coin`` makes of a box."""
    side = max(1, round(2 * box_size * (0.5 + CROP_MARGIN)))
    return side, min(side, max_size)


def crop_coin(image: Image.Image, box: Box, *, max_size: int = CROP_MAX_SIZE) -> Image.Image:
    """A square crop around ``box`` with a small margin, padded with the edge colour if needed."""
    cx, cy = box.centre
    half = box.size * (0.5 + CROP_MARGIN)
    left, top = round(cx - half), round(cy - half)
    side, stored = crop_side(box.size, max_size)
    crop = image.crop((left, top, left + side, top + side))  # pads outside with black
    if left < 0 or top < 0 or left + side > image.width or top + side > image.height:
        fill = tuple(int(v) for v in np.median(_border(np.asarray(image.convert("RGB"))), axis=0))
        canvas = Image.new("RGB", (side, side), fill)
        right, bottom = min(image.width, left + side), min(image.height, top + side)
        inside = image.crop((max(0, left), max(0, top), right, bottom))
        canvas.paste(inside, (max(0, -left), max(0, -top)))
        crop = canvas
    if stored < side:
        crop = crop.resize((stored, stored), Image.Resampling.LANCZOS)
    return crop
