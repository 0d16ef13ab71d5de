"""Pixels in, tensors out: resizing, the circular mask, and training augmentation.

Crops of round coins are masked to their inscribed circle, so neighbouring coins at the corners do
not count and rotating a crop changes nothing but the coin's orientation.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

MASK_GREY = 0.0  # in [-1, 1] units: mid-grey outside the coin


def crop_to_array(crop: Image.Image, size: int) -> np.ndarray:
    """(size, size, 3) uint8 of a square crop."""
    return np.asarray(crop.convert("RGB").resize((size, size), Image.Resampling.BILINEAR))


def circle_mask(size: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """(1, 1, size, size) soft mask of the inscribed circle."""
    coords = (torch.arange(size, device=device, dtype=torch.float32) + 0.5) / size * 2 - 1
    radius = torch.sqrt(coords[None, :] ** 2 + coords[:, None] ** 2)
    return torch.clamp((1.0 - radius) * size / 4, 0, 1)[None, None]


def to_tensor(batch: np.ndarray, round_flags: np.ndarray | None = None) -> torch.Tensor:
    """(N, S, S, 3) uint8 -> (N, 3, S, S) float in [-1, 1], round coins masked to their circle."""
    tensor = torch.from_numpy(np.ascontiguousarray(batch)).permute(0, 3, 1, 2).float()
    tensor = tensor / 127.5 - 1.0
    return apply_mask(tensor, round_flags)


def apply_mask(tensor: torch.Tensor, round_flags: np.ndarray | None = None) -> torch.Tensor:
    mask = circle_mask(tensor.shape[-1], tensor.device)
    if round_flags is not None:
        flags = torch.as_tensor(round_flags, dtype=torch.float32, device=tensor.device)
        mask = mask * flags[:, None, None, None] + (1 - flags[:, None, None, None])
    return tensor * mask + MASK_GREY * (1 - mask)


def rotations(tensor: torch.Tensor, count: int) -> list[torch.Tensor]:
    """The batch turned by 0, 90, 180, 270 degrees (``count`` of them): exact, no resampling."""
    turns = [
        tensor,
        tensor.transpose(2, 3).flip(2),  # 90 degrees (written with ops ONNX can export)
        tensor.flip(2).flip(3),  # 180
        tensor.transpose(2, 3).flip(3),  # 270
    ]
    return turns[:count]


class Augment(torch.nn.Module):
    """What differs between two photos of one type: any rotation, lighting, colour cast, blur,
    scale, position, wear (noise and contrast loss). Works on [-1, 1] batches."""

    def __init__(self, scale_jitter: float = 0.12) -> None:
        super().__init__()
        import kornia.augmentation as K

        self.geometry = K.RandomAffine(
            degrees=180.0,
            translate=(0.04, 0.04),
            scale=(1.0 - scale_jitter, 1.0 + scale_jitter),
            p=1.0,
            padding_mode="border",
        )
        self.photometric = K.AugmentationSequential(
            K.ColorJitter(0.35, 0.35, 0.3, 0.04, p=0.9),
            K.RandomGaussianBlur((5, 5), (0.1, 1.6), p=0.3),
            K.RandomGaussianNoise(mean=0.0, std=0.04, p=0.25),
            K.RandomSharpness(0.5, p=0.2),
        )

    def forward(self, tensor: torch.Tensor, round_flags: np.ndarray | None = None) -> torch.Tensor:
        unit = (tensor + 1) / 2
        unit = self.photometric(self.geometry(unit)).clamp(0, 1)
        return apply_mask(unit * 2 - 1, round_flags)
