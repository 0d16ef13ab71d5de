"""Pixels in, tensors out: resizing, the circular mask, and training augmentation.

Crops of round coins are masked to their inscribed circle, so neighbouring coins at the corners do
not count and rotating a crop changes nothing but the coin's orientation.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from PIL import Image

MASK_GREY = 0.0  # in [-1, 1] units: mid-grey outside the coin
# How far lighting may differ between two photos of one type (kornia ColorJitter's ranges): the
# network learns to ignore it, and a colour cue must survive it (``relit``).
LIGHTING = {"brightness": 0.35, "contrast": 0.35, "saturation": 0.3, "hue": 0.04}
# Tray photos under a lamp come out washed, their highlights clipped, far beyond ColorJitter's
# brightness (at most 1.35): a share of training crops is lit by a gain drawn from this range.
OVEREXPOSED_GAIN = (1.3, 2.2)
OVEREXPOSED_SHARE = 0.15
# A shiny coin mirrors what it lies on: on a red cloth a Nordic gold coin looks copper. Shown on a
# flat colour, a training coin takes up to this share of that colour's tint.
REFLECTION = 0.5


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


def _choose_round(
    n: int, probability: float, generator: torch.Generator | None, round_flags: np.ndarray | None
) -> torch.Tensor:
    """Which of ``n`` crops to change: a share ``probability``, round coins only."""
    chosen = torch.rand(n, generator=generator) < probability
    if round_flags is not None:
        chosen &= torch.as_tensor(np.asarray(round_flags, dtype=bool))
    return chosen


def _rim_geometry(
    tensor: torch.Tensor, circles: np.ndarray, which: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The chosen crops' circles and each pixel's offset and distance from their centres, all
    as shares of the side, on the batch's device."""
    side = tensor.shape[-1]
    circles_t = torch.as_tensor(np.asarray(circles)[which.numpy()], dtype=tensor.dtype)
    circles_t = circles_t.to(tensor.device)
    coords = (torch.arange(side, device=tensor.device, dtype=tensor.dtype) + 0.5) / side
    dx = coords[None, None, :] - circles_t[:, 0, None, None]
    dy = coords[None, :, None] - circles_t[:, 1, None, None]
    return circles_t, dx, dy, torch.sqrt(dx**2 + dy**2)


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
    chosen = _choose_round(n, probability, generator, round_flags)
    if n < 2 or not chosen.any():
        return tensor
    which = torch.nonzero(chosen).flatten()
    count = len(which)
    circles_t, _, _, distance = _rim_geometry(tensor, circles, which)
    coin = torch.clamp((circles_t[:, 2, None, None] * 1.03 - distance) * side / 2, 0, 1)[:, None]
    which = which.to(tensor.device)
    other = tensor[(which - 1) % n].flip(2).flip(3)  # the crop before, turned half round
    flat = torch.rand(count, channels, 1, 1, generator=generator).to(tensor) * 2 - 1
    noise = torch.randn(count, channels, side, side, generator=generator).to(tensor)
    use_flat = (torch.rand(count, generator=generator) < 0.5).to(tensor.device)[:, None, None, None]
    background = torch.where(use_flat, flat + 0.15 * noise, other)
    # the coin mirrors a flat colour: each channel by its share of the colour's mean, part way
    flat_unit = (flat + 1) / 2
    tint = (flat_unit / flat_unit.mean(dim=1, keepdim=True).clamp_min(0.05)).clamp(0.5, 2.0)
    strength = torch.rand(count, 1, 1, 1, generator=generator).to(tensor) * REFLECTION
    gains = torch.where(use_flat, 1 + strength * (tint - 1), torch.ones_like(tint))
    coins = ((tensor[which] + 1) / 2 * gains).clamp(0, 1) * 2 - 1
    out = tensor.clone()
    out[which] = coins * coin + background * (1 - coin)
    return out


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


def shift_hue(unit: torch.Tensor, turns: torch.Tensor) -> torch.Tensor:
    """[0, 1] RGB images with their HSV hue turned by ``turns`` (one per image; 1 = a full
    turn), saturation and value kept: kornia's ``adjust_hue`` (``turns`` x 2 pi) in closed
    form, each channel the minimum plus the chroma times its share at the new hue, without the
    round trip through HSV (43 crops at 192 px: 47 ms against kornia's 103)."""
    high, low = unit.max(dim=1, keepdim=True).values, unit.min(dim=1, keepdim=True).values
    chroma = high - low
    red, green, blue = unit[:, 0:1], unit[:, 1:2], unit[:, 2:3]
    red_top, green_top = high == red, high == green
    rise = torch.where(red_top, green - blue, torch.where(green_top, blue - red, red - green))
    start = torch.where(red_top, 0.0, torch.where(green_top, 2.0, 4.0))
    hue6 = rise.div_(torch.where(chroma > 0, chroma, 1.0)).add_(start)  # in sixths of a turn
    hue6 = hue6.add_(6 * turns.to(unit)[:, None, None, None]).remainder_(6)
    centre = _HUE_CENTRES.to(unit)
    shares = (hue6 - centre).abs_().mul_(_HUE_SLOPES.to(unit)).add_(_HUE_BASES.to(unit))
    return shares.clamp_(0, 1).mul_(chroma).add_(low)


# Each channel's share of the chroma by hue (in sixths): red |h-3|-1, green 2-|h-2|, blue 2-|h-4|
_HUE_CENTRES = torch.tensor([3.0, 2.0, 4.0])[None, :, None, None]
_HUE_SLOPES = torch.tensor([1.0, -1.0, -1.0])[None, :, None, None]
_HUE_BASES = torch.tensor([-1.0, 2.0, 2.0])[None, :, None, None]


class ColourJitter(torch.nn.Module):
    """kornia's ColorJitter (``LIGHTING``'s ranges drawn per image, the four adjustments in
    one random order per batch, each clamped to [0, 1], each image changed with chance ``p``)
    with the hue turned by ``shift_hue``: the same lightings in two thirds of the time (a batch
    of 48 at 192 px: 66-70 ms against 99-113 ms)."""

    def __init__(
        self, lighting: dict[str, float] = LIGHTING, p: float = 1.0, same_on_batch: bool = False
    ) -> None:
        super().__init__()
        self.lighting, self.p, self.same_on_batch = lighting, p, same_on_batch

    def forward(self, unit: torch.Tensor) -> torch.Tensor:
        from kornia.enhance import (
            adjust_brightness_accumulative,
            adjust_contrast_with_mean_subtraction,
            adjust_saturation_with_gray_subtraction,
        )

        n = 1 if self.same_on_batch else unit.shape[0]

        def draw(spread: float, middle: float = 1.0) -> torch.Tensor:
            return (middle + (torch.rand(n) * 2 - 1) * spread).expand(unit.shape[0]).to(unit)

        lighting = self.lighting
        factors = (
            draw(lighting["brightness"]),
            draw(lighting["contrast"]),
            draw(lighting["saturation"]),
            draw(lighting["hue"], middle=0.0),
        )
        steps = (
            adjust_brightness_accumulative,
            adjust_contrast_with_mean_subtraction,
            adjust_saturation_with_gray_subtraction,
            shift_hue,
        )
        chosen = torch.rand(n).expand(unit.shape[0]) < self.p
        which = torch.nonzero(chosen).flatten().to(unit.device)
        if not len(which):
            return unit
        lit = unit[which].clamp(0, 1)
        for step in torch.randperm(4).tolist():
            lit = steps[step](lit, factors[step][which])
        out = unit.clone()
        out[which] = lit.clamp(0, 1)
        return out


def overexpose(unit: torch.Tensor) -> torch.Tensor:
    """Each [0, 1] image lit too brightly (a gain from ``OVEREXPOSED_GAIN``), clipped at white."""
    low, high = OVEREXPOSED_GAIN
    gain = low + (high - low) * torch.rand(len(unit), 1, 1, 1, device=unit.device)
    return (unit * gain).clamp(0, 1)


# Another photographer's lamp or camera: each channel's gain drawn log-normally, this spread
WHITE_BALANCE_SPREAD = 0.15
TIGHT_ZOOM = (1.1, 1.3)  # a crop cut at the coin's rim by another photographer: zoomed in this much


def white_balance(unit: torch.Tensor, spread: float = WHITE_BALANCE_SPREAD) -> torch.Tensor:
    """Each [0, 1] image under another white balance: one gain per channel (mean gain 1)."""
    gains = torch.exp(torch.randn(unit.shape[0], 3, 1, 1) * spread).to(unit)
    return (unit * gains / gains.mean(dim=1, keepdim=True)).clamp(0, 1)


def tighten(unit: torch.Tensor, zoom: tuple[float, float] = TIGHT_ZOOM) -> torch.Tensor:
    """Each image zoomed about its centre by a factor drawn from ``zoom``: the coin's rim at or
    beyond the crop's edge, as another photographer's tight crop (or a studio frame) cuts it."""
    low, high = zoom
    factor = low + (high - low) * torch.rand(unit.shape[0]).to(unit)
    theta = torch.zeros(unit.shape[0], 2, 3).to(unit)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0 / factor
    grid = torch.nn.functional.affine_grid(theta, list(unit.shape), align_corners=False)
    return torch.nn.functional.grid_sample(
        unit, grid, mode="bilinear", padding_mode="border", align_corners=False
    )


def soften(unit: torch.Tensor, most: float = 0.5) -> torch.Tensor:
    """A slightly out-of-focus copy of each [0, 1] image: kornia's sharpness towards its 3x3
    smoothing at a random factor up to ``most`` (as RandomSharpness(0.5), which only blurs)."""
    from kornia.enhance import sharpness

    return sharpness(unit, torch.rand(unit.shape[0]).to(unit) * most)


class Augment(torch.nn.Module):
    """What differs between two photos of one type: any rotation, lighting, colour cast, blur,
    scale, position, wear (noise and contrast loss). Works on [-1, 1] batches."""

    def __init__(
        self,
        scale_jitter: float = 0.12,
        overexposed: float = OVEREXPOSED_SHARE,
        white_balance: float = 0.0,
        tight_crops: float = 0.0,
        degrees: float = 180.0,
    ) -> None:
        super().__init__()
        self.overexposed = overexposed
        self.white_balance, self.tight_crops = white_balance, tight_crops
        import kornia.augmentation as K

        self.geometry = K.RandomAffine(
            degrees=degrees,
            translate=(0.04, 0.04),
            scale=(1.0 - scale_jitter, 1.0 + scale_jitter),
            p=1.0,
            padding_mode="border",
        )
        # the lightings of kornia's ColorJitter, every measured recipe's; a linear stand-in (one
        # colour matrix per image, faster still) was not kept: docs/experiments/training-log.md,
        # "Training time"
        self.colour = ColourJitter(LIGHTING, p=0.9)
        self.blur = K.RandomGaussianBlur((5, 5), (0.1, 1.6), p=0.3)

    def forward(self, tensor: torch.Tensor, round_flags: np.ndarray | None = None) -> torch.Tensor:
        unit = self.geometry((tensor + 1) / 2)
        if self.tight_crops:
            unit = _on_some(unit, self.tight_crops, tighten)
        unit = self.colour(unit)
        if self.white_balance:
            unit = _on_some(unit, self.white_balance, white_balance)
        if self.overexposed:
            unit = _on_some(unit, self.overexposed, overexpose)
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
        lit = ColourJitter(LIGHTING, same_on_batch=True)(unit)
    return (lit * 255.0).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


def reshape_outlines(
    tensor: torch.Tensor,
    circles: np.ndarray,
    probability: float,
    generator: torch.Generator | None = None,
    round_flags: np.ndarray | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Give a share ``probability`` of the round coins (``circles``: centre x, centre y, radius as
    shares of the side) another outline: a polygon or a scalloped rim of 6 to 12 sides, the table
    (read just beyond the rim along the same ray) showing where the coin no longer reaches.
    Returns the batch and which crops were reshaped.

    Training labels the reshaped crops as twins of their type. A network trained only on round
    coins learns to ignore the rim, and then reads a scalloped type it never trained on (the
    euro's 20 cent, its "Spanish flower") as the round type of the same design and metal."""
    n, _, side, _ = tensor.shape
    chosen = _choose_round(n, probability, generator, round_flags)
    if not chosen.any():
        return tensor, chosen
    which = torch.nonzero(chosen).flatten()
    count = len(which)
    sides = torch.randint(6, 13, (count,), generator=generator).to(tensor)
    phase = (torch.rand(count, generator=generator) * 2 * math.pi).to(tensor)
    polygon = (torch.rand(count, generator=generator) < 0.5).to(tensor.device)
    depth = (0.03 + 0.05 * torch.rand(count, generator=generator)).to(tensor)
    sharpness = (1 + 5 * torch.rand(count, generator=generator)).to(tensor)
    circle, dx, dy, distance = _rim_geometry(tensor, circles, which)
    angle = torch.atan2(dy, dx) - phase[:, None, None]
    period = 2 * math.pi / sides[:, None, None]
    within = torch.remainder(angle, period) - period / 2
    polygon_edge = torch.cos(period / 2) / torch.cos(within)
    bite = torch.clamp(torch.cos(sides[:, None, None] * angle), min=0) ** sharpness[:, None, None]
    scallop_edge = 1 - depth[:, None, None] * bite
    edge = torch.where(polygon[:, None, None], polygon_edge, scallop_edge)
    radius = circle[:, 2, None, None]
    coin = torch.clamp((radius * edge - distance) * side, 0, 1)[:, None]
    # The table just beyond the rim, along the same ray, fills what the coin no longer covers.
    scale = torch.clamp(radius * 1.12 / distance.clamp(min=1e-3), max=3.0)
    grid_x = (circle[:, 0, None, None] + dx * scale) * 2 - 1
    grid_y = (circle[:, 1, None, None] + dy * scale) * 2 - 1
    grid = torch.stack([grid_x, grid_y], dim=-1)
    which = which.to(tensor.device)
    picked = tensor[which]
    table = torch.nn.functional.grid_sample(
        picked, grid, mode="bilinear", padding_mode="border", align_corners=False
    )
    inside_rim = torch.clamp((radius * 1.03 - distance) * side, 0, 1)[:, None]
    cut_away = (1 - coin) * inside_rim
    out = tensor.clone()
    out[which] = picked * (1 - cut_away) + table * cut_away
    return out, chosen
