"""Decode any photo a museum may hold into an upright 8-bit RGB image, or say why not.

Cameras, scanners and collection systems produce JPEG, PNG, TIFF (often 16-bit or CMYK), WebP and
HEIC, with the orientation in EXIF rather than in the pixels. Everything downstream (thumbnails,
localisation, embedding) wants one thing: an upright RGB image of 8 bits per channel.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

try:  # HEIC/HEIF support (iPhones); registered once on import.
    import pillow_heif

    pillow_heif.register_heif_opener()
except ImportError:  # pragma: no cover - pillow-heif is a declared dependency
    pillow_heif = None

ImageFile.LOAD_TRUNCATED_IMAGES = False
# We check pixel counts ourselves (with the setting's limit) before decoding anything.
Image.MAX_IMAGE_PIXELS = None

SUPPORTED_FORMATS = {"JPEG", "PNG", "TIFF", "WEBP", "HEIF", "MPO", "BMP", "GIF"}
FORMAT_SUFFIX = {
    "JPEG": ".jpg",
    "MPO": ".jpg",
    "PNG": ".png",
    "TIFF": ".tif",
    "WEBP": ".webp",
    "HEIF": ".heic",
    "BMP": ".bmp",
    "GIF": ".gif",
}
DEFAULT_MAX_PIXELS = 100_000_000


class ImageLoadError(ValueError):
    """The bytes are not a usable image; the message says why in a few words."""


@dataclass(frozen=True)
class LoadedImage:
    """A decoded photo: upright 8-bit RGB pixels and what the file was."""

    rgb: Image.Image
    format: str
    original_mode: str

    @property
    def width(self) -> int:
        return self.rgb.width

    @property
    def height(self) -> int:
        return self.rgb.height

    @property
    def suffix(self) -> str:
        return FORMAT_SUFFIX.get(self.format, ".bin")


def _high_bit_depth_to_8bit(image: Image.Image) -> Image.Image:
    """Scale 16/32-bit integer or float greyscale to 0..255 instead of clipping it."""
    array = np.asarray(image)
    if image.mode.startswith("I;16") or (image.mode == "I" and array.max(initial=0) <= 65535):
        scaled = array.astype(np.float64) / 65535.0 * 255.0
    else:
        low, high = float(np.nanmin(array)), float(np.nanmax(array))
        scaled = (array.astype(np.float64) - low) / ((high - low) or 1.0) * 255.0
    return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8))


def _flatten_alpha(image: Image.Image) -> Image.Image:
    """Composite transparent pixels onto white, the background of catalogue photos."""
    rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def to_rgb8(image: Image.Image) -> Image.Image:
    """Normalise any Pillow mode (CMYK, 16-bit, palette, greyscale, alpha) to 8-bit RGB."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode.startswith("I;16") or mode in {"I", "F"}:
        return _high_bit_depth_to_8bit(image).convert("RGB")
    if mode == "P" and "transparency" in image.info:
        return _flatten_alpha(image)
    if mode in {"RGBA", "LA", "PA", "RGBa", "La"}:
        return _flatten_alpha(image)
    if mode == "CMYK":
        # Adobe CMYK JPEGs store inverted values; Pillow already undoes that on decode.
        return image.convert("RGB")
    return image.convert("RGB")


def load_image(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> LoadedImage:
    """Decode ``data`` into an upright 8-bit RGB image.

    Raises :class:`ImageLoadError` for an empty file, bytes that are no image, an image larger than
    ``max_pixels`` (a decompression bomb is refused before its pixels are decoded), or truncated
    and corrupt data.
    """
    if not data:
        raise ImageLoadError("empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise ImageLoadError("not an image (unrecognised format)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageLoadError(f"unreadable image header ({exc})") from None

    image_format = (image.format or "").upper()
    if image_format not in SUPPORTED_FORMATS:
        raise ImageLoadError(f"unsupported image format {image.format or 'unknown'}")
    width, height = image.size
    if width <= 0 or height <= 0:
        raise ImageLoadError(f"image has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise ImageLoadError(
            f"decompression bomb: {width}x{height} = {width * height:,} pixels "
            f"exceeds the limit of {max_pixels:,}"
        )
    original_mode = image.mode
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image.load()
            upright = ImageOps.exif_transpose(image) or image
            rgb = to_rgb8(upright)
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        reason = str(exc) or type(exc).__name__
        if "truncated" in reason.lower() or isinstance(exc, EOFError):
            raise ImageLoadError("truncated image data (the file ends early)") from None
        raise ImageLoadError(f"corrupt image data ({reason})") from None
    except Image.DecompressionBombError as exc:  # pragma: no cover - pixels checked above
        raise ImageLoadError(f"decompression bomb ({exc})") from None
    return LoadedImage(rgb=rgb, format=image_format, original_mode=original_mode)


def make_thumbnail(image: Image.Image, size: int = 256, quality: int = 85) -> bytes:
    """A JPEG no larger than ``size`` on its long side, for review pages and galleries."""
    thumb = image.copy()
    thumb.thumbnail((size, size), Image.Resampling.LANCZOS)
    return encode_jpeg(thumb, quality, optimize=True)


def encode_jpeg(image: Image.Image, quality: int = 92, *, optimize: bool = False) -> bytes:
    """JPEG bytes of ``image``: how crops and thumbnails are stored."""
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality, optimize=optimize)
    return buffer.getvalue()
