"""Pixels in, tensors out: resizing, the circular mask, and training augmentation.

Crops of round coins are masked to their inscribed circle, so neighbouring coins at the corners do
not count and rotating a crop changes nothing but the coin's orientation.
"""

from __future__ import annotations

from collections.abc import Callable

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
    noise. The table a tray lay on and its lighting's tint then cannot stand for a type.
    Only the chosen crops are computed (a batch's worth of noise cost a tenth of a step)."""
    n, channels, side, _ = tensor.shape
    chosen = torch.rand(n, generator=generator) < probability
    if round_flags is not None:
        chosen &= torch.as_tensor(np.asarray(round_flags, dtype=bool))
    if n < 2 or not chosen.any():
        return tensor
    which = torch.nonzero(chosen).flatten()
    count = len(which)
    circles_t = torch.as_tensor(np.asarray(circles)[which.numpy()], dtype=tensor.dtype)
    circles_t = circles_t.to(tensor.device)
    coords = (torch.arange(side, device=tensor.device, dtype=tensor.dtype) + 0.5) / side
    dx = coords[None, None, :] - circles_t[:, 0, None, None]
    dy = coords[None, :, None] - circles_t[:, 1, None, None]
    distance = torch.sqrt(dx**2 + dy**2)
    coin = torch.clamp((circles_t[:, 2, None, None] * 1.03 - distance) * side / 2, 0, 1)[:, None]
    which = which.to(tensor.device)
    other = tensor[(which - 1) % n].flip(2).flip(3)  # the crop before, turned half round
    flat = torch.rand(count, channels, 1, 1, generator=generator).to(tensor) * 2 - 1
    noise = torch.randn(count, channels, side, side, generator=generator).to(tensor)
    use_flat = (torch.rand(count, generator=generator) < 0.5).to(tensor.device)[:, None, None, None]
    background = torch.where(use_flat, flat + 0.15 * noise, other)
    out = tensor.clone()
    out[which] = tensor[which] * coin + background * (1 - coin)
    return out


GREY_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R 601 luma, as kornia's and PIL's greyscale


def colour_matrices(count: int, lighting: dict[str, float] = LIGHTING) -> torch.Tensor:
    """(count, 3, 3) random lightings within ``lighting``'s ranges, each one matrix: brightness
    (a gain), saturation (a blend with the grey) and hue (a turn about the grey axis), applied
    in that order. Contrast, which needs the image's mean, is ``jitter_colour``'s."""

    def draw(spread: float) -> torch.Tensor:
        return 1.0 + (torch.rand(count) * 2 - 1) * spread

    gain, saturation = draw(lighting["brightness"]), draw(lighting["saturation"])
    grey = torch.tensor(GREY_WEIGHTS)
    identity = torch.eye(3)
    desaturate = torch.ones(3, 1) * grey[None, :]  # each channel -> the grey
    saturate = saturation[:, None, None] * identity + (1 - saturation)[:, None, None] * desaturate
    angle = (torch.rand(count) * 2 - 1) * lighting["hue"] * 2 * np.pi
    axis = torch.full((3,), 1 / np.sqrt(3))
    cross = torch.tensor([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    outer = axis[:, None] * axis[None, :]
    cos, sin = torch.cos(angle)[:, None, None], torch.sin(angle)[:, None, None]
    turn = cos * identity + sin * cross + (1 - cos) * outer  # Rodrigues: about (1, 1, 1)
    return turn @ saturate * gain[:, None, None]


def _light(unit: torch.Tensor, matrices: torch.Tensor, contrast: torch.Tensor) -> torch.Tensor:
    """[0, 1] images with their contrast scaled by ``contrast`` about each one's mean grey, then
    turned by ``matrices`` (``colour_matrices``); one einsum for the lot."""
    grey = torch.tensor(GREY_WEIGHTS).to(unit)
    mean_grey = torch.einsum("c,nchw->n", grey, unit) / (unit.shape[2] * unit.shape[3])
    # the matrices keep grey grey, scaled by their gain (each row's sum)
    offset = (1 - contrast) * mean_grey * matrices.sum(dim=2).mean(dim=1)
    lit = torch.einsum("nij,njhw->nihw", matrices * contrast[:, None, None], unit)
    return (lit + offset[:, None, None, None]).clamp(0, 1)


def jitter_colour(
    unit: torch.Tensor, probability: float = 1.0, lighting: dict[str, float] = LIGHTING
) -> torch.Tensor:
    """Each [0, 1] image of the batch under another lighting, with chance ``probability``:
    ``lighting``'s ranges as in kornia's ColorJitter, but every adjustment linear, so one 3x3
    matrix and one offset per image (a tenth of ColorJitter's time on a training batch)."""
    n = unit.shape[0]
    matrices = colour_matrices(n, lighting).to(unit)
    contrast = (1.0 + (torch.rand(n) * 2 - 1) * lighting["contrast"]).to(unit)
    keep = (torch.rand(n) >= probability).to(unit.device)
    matrices = torch.where(keep[:, None, None], torch.eye(3).to(unit), matrices)
    return _light(unit, matrices, torch.where(keep, torch.ones_like(contrast), contrast))


def _on_some(
    unit: torch.Tensor, probability: float, change: Callable[[torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    """``change`` applied to a random share ``probability`` of the batch, only those computed."""
    which = torch.nonzero(torch.rand(unit.shape[0]) < probability).flatten().to(unit.device)
    if not len(which):
        return unit
    out = unit.clone()
    out[which] = change(unit[which])
    return out


SOFTEN_KERNEL = torch.tensor([[1.0, 1.0, 1.0], [1.0, 5.0, 1.0], [1.0, 1.0, 1.0]]) / 13


def soften(unit: torch.Tensor, most: float = 0.5) -> torch.Tensor:
    """A slightly out-of-focus copy: each image blended towards its 3x3 smoothing by a random
    share of up to ``most`` (kornia's RandomSharpness(0.5), which only ever blurs)."""
    channels = unit.shape[1]
    kernel = SOFTEN_KERNEL.to(unit)[None, None].repeat(channels, 1, 1, 1)
    smooth = torch.nn.functional.conv2d(
        torch.nn.functional.pad(unit, (1, 1, 1, 1), mode="replicate"), kernel, groups=channels
    )
    share = 1.0 - torch.rand(unit.shape[0]).to(unit) * most  # 1: the image, 0: smoothed
    return smooth + share[:, None, None, None] * (unit - smooth)


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
        self.blur = K.RandomGaussianBlur((5, 5), (0.1, 1.6), p=0.3)

    def forward(self, tensor: torch.Tensor, round_flags: np.ndarray | None = None) -> torch.Tensor:
        unit = jitter_colour(self.geometry((tensor + 1) / 2), probability=0.9)
        unit = self.blur(unit)
        unit = _on_some(unit, 0.25, lambda some: some + 0.04 * torch.randn_like(some))
        unit = _on_some(unit, 0.2, soften).clamp(0, 1)
        return apply_mask(unit * 2 - 1, round_flags)


def relit(crops: np.ndarray, seed: int) -> np.ndarray:
    """(N, H, W, 3) uint8 crops photographed again under one other lighting drawn from
    ``LIGHTING`` by ``seed``, the same for the whole batch (as one tray under one lamp): what
    a cue measured on a query may meet that the references' photographs did not."""
    if len(crops) == 0:
        return crops
    unit = torch.from_numpy(np.ascontiguousarray(crops)).permute(0, 3, 1, 2).float() / 255.0
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        matrix = colour_matrices(1)
        contrast = 1.0 + (torch.rand(1) * 2 - 1) * LIGHTING["contrast"]
    n = len(unit)
    lit = _light(unit, matrix.expand(n, 3, 3), contrast.expand(n))
    return (lit * 255.0).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()
