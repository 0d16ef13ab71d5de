"""Pixels in, tensors out: resizing, the circular mask, and training augmentation.

Crops of round coins are masked to their inscribed circle, so neighbouring coins at the corners do
not count and rotating a crop changes nothing but the coin's orientation.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

MASK_GREY = 0.0  # in [-1, 1] units: mid-grey outside the coin
# How far lighting may differ between two photos of one type (kornia ColorJitter's ranges): the
# network learns to ignore it, and a colour cue must survive it (``relit``).
LIGHTING = {"brightness": 0.35, "contrast": 0.35, "saturation": 0.3, "hue": 0.04}


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


def swap_backgrounds(
    tensor: torch.Tensor,
    circles: np.ndarray,
    probability: float,
    generator: torch.Generator | None = None,
    round_flags: np.ndarray | None = None,
) -> torch.Tensor:
    """Replace what lies outside each round coin's rim (``circles``: centre x, centre y, radius as
    shares of the side) with another scene, for a share ``probability`` of the batch: another
    crop of the batch turned half round (other coins, another table) or a flat colour with
    noise. The table a tray lay on and its lighting's tint then cannot stand for a type."""
    n, _, side, _ = tensor.shape
    chosen = torch.rand(n, generator=generator) < probability
    if round_flags is not None:
        chosen &= torch.as_tensor(np.asarray(round_flags, dtype=bool))
    if n < 2 or not chosen.any():
        return tensor
    circles_t = torch.as_tensor(circles, dtype=tensor.dtype, device=tensor.device)
    coords = (torch.arange(side, device=tensor.device, dtype=tensor.dtype) + 0.5) / side
    dx = coords[None, None, :] - circles_t[:, 0, None, None]
    dy = coords[None, :, None] - circles_t[:, 1, None, None]
    distance = torch.sqrt(dx**2 + dy**2)
    coin = torch.clamp((circles_t[:, 2, None, None] * 1.03 - distance) * side / 2, 0, 1)[:, None]
    other = tensor.roll(1, dims=0).flip(2).flip(3)
    flat = torch.rand(n, 3, 1, 1, generator=generator).to(tensor) * 2 - 1
    flat = flat + 0.15 * torch.randn(n, 3, side, side, generator=generator).to(tensor)
    use_flat = (torch.rand(n, generator=generator) < 0.5).to(tensor.device)[:, None, None, None]
    background = torch.where(use_flat, flat, other)
    mixed = tensor * coin + background * (1 - coin)
    return torch.where(chosen.to(tensor.device)[:, None, None, None], mixed, tensor)


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
            K.ColorJitter(**LIGHTING, p=0.9),
            K.RandomGaussianBlur((5, 5), (0.1, 1.6), p=0.3),
            K.RandomGaussianNoise(mean=0.0, std=0.04, p=0.25),
            K.RandomSharpness(0.5, p=0.2),
        )

    def forward(self, tensor: torch.Tensor, round_flags: np.ndarray | None = None) -> torch.Tensor:
        unit = (tensor + 1) / 2
        unit = self.photometric(self.geometry(unit)).clamp(0, 1)
        return apply_mask(unit * 2 - 1, round_flags)


def relit(crops: np.ndarray, seed: int) -> np.ndarray:
    """(N, H, W, 3) uint8 crops photographed again under one other lighting drawn from
    ``LIGHTING`` by ``seed``, the same for the whole batch (as one tray under one lamp): what
    a cue measured on a query may meet that the references' photographs did not."""
    import kornia.augmentation as K

    if len(crops) == 0:
        return crops
    unit = torch.from_numpy(np.ascontiguousarray(crops)).permute(0, 3, 1, 2).float() / 255.0
    with torch.random.fork_rng(devices=[]), torch.no_grad():  # kornia draws from torch's RNG
        torch.manual_seed(seed)
        lit = K.ColorJitter(**LIGHTING, p=1.0, same_on_batch=True)(unit).clamp(0, 1)
    return (lit * 255.0).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()
