"""Finding coins: tray photos give one box per coin, stacked sides split, crops stay whole."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from coinlens.vision import load_image
from coinlens.vision.localise import crop_coin, locate_coins

SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "euro-coins"

# Counted by hand on the photos.
TRAYS = {"test_test_1.jpg": 28, "test_test_2.jpg": 28, "train_train_1.jpg": 29}


@pytest.mark.parametrize(("name", "coins"), sorted(TRAYS.items()))
def test_tray_photos_give_one_box_per_coin(name: str, coins: int) -> None:
    image = load_image((SAMPLE / "trays" / name).read_bytes()).rgb
    layout = locate_coins(image)
    assert layout.kind == "tray"
    assert abs(len(layout.boxes) - coins) <= 1
    sizes = np.array([box.size for box in layout.boxes])
    assert sizes.max() < 2.2 * sizes.min()  # coins, not fragments or merged pairs
    for box in layout.boxes:  # every box inside the photo
        assert -0.1 * box.size <= box.x and box.x + box.w <= image.width + 0.1 * box.size


def _disc_picture(centres: list[tuple[int, int]], size: tuple[int, int], r: int) -> Image.Image:
    image = Image.new("RGB", size, (250, 250, 248))
    draw = ImageDraw.Draw(image)
    for cx, cy in centres:
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=(90, 70, 40))
        draw.rectangle([cx - r // 4, cy - r // 4, cx + r // 4, cy + r // 4], fill=(250, 250, 248))
    return image


def test_stacked_and_side_by_side_sides_are_split() -> None:
    stacked = locate_coins(_disc_picture([(100, 90), (100, 290)], (200, 380), 80))
    assert stacked.kind == "pair"
    assert stacked.boxes[0].centre[1] < stacked.boxes[1].centre[1]  # obverse on top
    side_by_side = locate_coins(_disc_picture([(90, 100), (290, 100)], (380, 200), 80))
    assert side_by_side.kind == "pair"
    assert side_by_side.boxes[0].centre[0] < side_by_side.boxes[1].centre[0]  # obverse left


def test_one_coin_on_a_plain_background_is_cropped_to_it() -> None:
    layout = locate_coins(_disc_picture([(300, 200)], (700, 450), 90))
    assert layout.kind == "single"
    box = layout.boxes[0]
    assert abs(box.centre[0] - 300) < 8 and abs(box.centre[1] - 200) < 8
    assert 170 < box.size < 200
    crop = crop_coin(_disc_picture([(300, 200)], (700, 450), 90), box)
    assert crop.width == crop.height and 180 < crop.width < 230


def test_crops_stay_whole(data_root: Path) -> None:
    """euro-kaa crops are fixed windows: the coin's size in them is information, kept."""
    crop = data_root / "euro-kaa" / "train" / "1c"
    for path in sorted(crop.glob("*.jpg"))[:10]:
        layout = locate_coins(load_image(path.read_bytes()).rgb)
        assert len(layout.boxes) == 1


def test_stacked_cash_coin_images_are_split(data_root: Path) -> None:
    """Catalogue pictures of cast coins with obverse above reverse: most split into two sides."""
    root = data_root / "cash-coins-dev"
    rows = list(csv.DictReader((root / "manifest.csv").open(encoding="utf-8")))
    tall = [r for r in rows if 1.6 < int(r["height"]) / int(r["width"]) < 2.6][:20]
    pairs = 0
    for row in tall:
        layout = locate_coins(load_image((root / row["path"]).read_bytes()).rgb)
        pairs += layout.kind == "pair"
    assert tall and pairs / len(tall) >= 0.5, (pairs, len(tall))


def test_two_sides_filling_a_long_frame_are_split() -> None:
    """A thumbnail twice as tall (or wide) as it is wide, both sides filling it and no plain
    background, is a pair of squares, not one central square through both coins."""
    crops = sorted((SAMPLE / "references" / "1e").glob("*.jpg"))[:2]
    sides = [load_image(p.read_bytes()).rgb.resize((50, 50)) for p in crops]
    stacked = Image.new("RGB", (50, 100))
    stacked.paste(sides[0], (0, 0))
    stacked.paste(sides[1], (0, 50))
    layout = locate_coins(stacked)
    assert layout.kind == "pair"
    assert [(b.x, b.y, b.size) for b in layout.boxes] == [(0, 0, 50), (0, 50, 50)]
    wide = locate_coins(stacked.transpose(Image.Transpose.ROTATE_90))
    assert wide.kind == "pair" and {b.y for b in wide.boxes} == {0}
    # a square crop stays one coin
    assert locate_coins(sides[0]).kind == "crop"
