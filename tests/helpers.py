"""Synthetic test images: coins that differ by seed, in any format and pixel mode."""

from __future__ import annotations

import io
import socket
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

import coinlens.vision  # noqa: F401  (registers the HEIF opener used for HEIC files)


def coin_picture(size: int = 96, seed: int = 0) -> np.ndarray:
    """A synthetic coin: a textured disc on a plain background, different for every seed."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    radius = size * 0.4
    disc = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 < radius**2
    picture = np.full((size, size, 3), 235, np.uint8)
    texture = rng.integers(60, 200, (size, size, 3), dtype=np.uint8)
    picture[disc] = texture[disc]
    return picture


def make_image(
    path: Path,
    *,
    fmt: str = "JPEG",
    seed: int = 0,
    size: int = 96,
    mode: str = "RGB",
    exif_orientation: int | None = None,
) -> Path:
    """Write a synthetic coin photo in ``fmt`` and Pillow ``mode`` to ``path``."""
    image = Image.fromarray(coin_picture(size, seed))
    if mode == "I;16":
        grey = np.asarray(image.convert("L"), dtype=np.uint16) * 257
        image = Image.fromarray(grey)
    elif mode != "RGB":
        image = image.convert(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    kwargs = {}
    if exif_orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        kwargs["exif"] = exif.tobytes()
    image.save(path, format=fmt, **kwargs)
    return path


def image_bytes(fmt: str = "JPEG", seed: int = 0, size: int = 96) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(coin_picture(size, seed)).save(buffer, format=fmt)
    return buffer.getvalue()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def png_bomb(width: int = 30_000, height: int = 30_000) -> bytes:
    """A valid greyscale PNG of zeros: ~1 MB of file that would decode to width*height pixels."""
    compressor = zlib.compressobj(9)
    row = bytes(width + 1)  # filter byte + pixels
    body = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data).to_bytes(4, "big")
        return len(data).to_bytes(4, "big") + kind + data + crc

    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    chunks = chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + chunks
