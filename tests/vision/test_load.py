"""Every image a museum may hold decodes to upright 8-bit RGB, or fails with a short reason."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from coinlens.vision import ImageLoadError, load_image, make_thumbnail
from helpers import coin_picture, make_image, png_bomb


@pytest.mark.parametrize(
    ("fmt", "suffix"),
    [("JPEG", ".jpg"), ("PNG", ".png"), ("TIFF", ".tif"), ("WEBP", ".webp"), ("HEIF", ".heic")],
)
def test_formats_decode_to_rgb(tmp_path: Path, fmt: str, suffix: str) -> None:
    path = make_image(tmp_path / f"coin{suffix}", fmt=fmt)
    loaded = load_image(path.read_bytes())
    assert loaded.rgb.mode == "RGB"
    assert loaded.rgb.size == (96, 96)
    assert loaded.suffix == suffix


@pytest.mark.parametrize(
    ("mode", "fmt"),
    [
        ("CMYK", "JPEG"),
        ("CMYK", "TIFF"),
        ("P", "PNG"),
        ("L", "PNG"),
        ("LA", "PNG"),
        ("RGBA", "PNG"),
        ("I;16", "PNG"),
        ("I;16", "TIFF"),
        ("1", "PNG"),
    ],
)
def test_modes_normalise_to_8bit_rgb(tmp_path: Path, mode: str, fmt: str) -> None:
    path = make_image(tmp_path / f"coin.{fmt.lower()}", fmt=fmt, mode=mode)
    loaded = load_image(path.read_bytes())
    assert loaded.rgb.mode == "RGB"
    assert loaded.original_mode == Image.open(path).mode
    pixels = np.asarray(loaded.rgb)
    if mode != "1":  # the disc's texture survives: not clipped to black or white
        assert 20 < pixels.mean() < 235 and pixels.std() > 10


def test_sixteen_bit_is_scaled_not_clipped() -> None:
    grey = np.full((8, 8), 32768, np.uint16)
    buffer = io.BytesIO()
    Image.fromarray(grey).save(buffer, format="PNG")
    assert np.asarray(load_image(buffer.getvalue()).rgb)[0, 0].tolist() == [128, 128, 128]


def test_transparent_pixels_become_white() -> None:
    rgba = Image.new("RGBA", (4, 4), (10, 20, 30, 0))
    buffer = io.BytesIO()
    rgba.save(buffer, format="PNG")
    assert load_image(buffer.getvalue()).rgb.getpixel((0, 0)) == (255, 255, 255)


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    wide = Image.fromarray(coin_picture(96)).resize((120, 60))
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: display rotated 90 degrees clockwise
    wide.save(path, exif=exif.tobytes())
    loaded = load_image(path.read_bytes())
    assert loaded.rgb.size == (60, 120)


def test_errors_say_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(ImageLoadError, match="empty file"):
        load_image(b"")
    with pytest.raises(ImageLoadError, match="not an image"):
        load_image(b"%PDF-1.7 this is a PDF, not a photo")
    good = make_image(tmp_path / "coin.jpg", size=256).read_bytes()
    with pytest.raises(ImageLoadError, match="truncated"):
        load_image(good[: len(good) // 2])


def test_decompression_bomb_refused_before_decoding() -> None:
    bomb = png_bomb(40_000, 40_000)
    assert len(bomb) < 3_000_000
    with pytest.raises(ImageLoadError, match="decompression bomb: 40000x40000"):
        load_image(bomb)
    with pytest.raises(ImageLoadError, match="decompression bomb"):
        load_image(make_image_bytes_of_size(300, 300), max_pixels=50_000)


def make_image_bytes_of_size(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (1, 2, 3)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_thumbnail_is_a_small_jpeg(tmp_path: Path) -> None:
    loaded = load_image(make_image(tmp_path / "big.png", fmt="PNG", size=900).read_bytes())
    thumb = Image.open(io.BytesIO(make_thumbnail(loaded.rgb, 256)))
    assert thumb.format == "JPEG" and max(thumb.size) == 256
