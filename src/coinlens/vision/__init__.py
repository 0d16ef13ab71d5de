"""Images: decoding and normalisation (localisation and side splitting join with recognition)."""

from coinlens.vision.load import (
    SUPPORTED_FORMATS,
    ImageLoadError,
    LoadedImage,
    encode_jpeg,
    load_image,
    make_thumbnail,
    to_rgb8,
)

__all__ = [
    "SUPPORTED_FORMATS",
    "ImageLoadError",
    "LoadedImage",
    "encode_jpeg",
    "load_image",
    "make_thumbnail",
    "to_rgb8",
]
