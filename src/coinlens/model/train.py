"""Fine-tuning the embedding on catalogued coins: metric learning with class-balanced batches.

Rare types matter as much as common ones (euro-kaa runs from 25 images of 2c to 284 of 5c), so a
batch draws types uniformly, then images within a type. CosFace with one proxy per type needs no
pair mining and works with a single image per type.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from coinlens.model.memory import reuse_freed_memory
from coinlens.model.network import DEFAULT_BACKBONE, CoinNet, CosFaceLoss
from coinlens.model.transforms import (
    OVEREXPOSED_SHARE,
    Augment,
    reshape_outlines,
    swap_backgrounds,
    to_tensor,
)
from coinlens.vision.cues import coin_circles

# Pixels: finer crops read numerals and mint marks (euro-kaa top-1: 128 px 0.857, 160 px 0.92-0.93,
# 192 px 0.94 in three trainings; identification at 192 px runs at 2.5x the PyTorch baseline).
INPUT_SIZE = 192
ROTATIONS = 2  # exact turns averaged at inference: the network learnt any angle in training
UPRIGHT_TILT = 12.0  # degrees an upright photo's coin may lean (``TrainConfig.upright``)
EMBEDDING_DIM = 256  # the training head's width, where the loss works (see ``CoinNet.drop_head``)


@dataclass
class TrainConfig:
    epochs: int = 12
    batch_size: int = 48
    lr_head: float = 2e-3
    lr_trunk: float = 4e-4
    weight_decay: float = 1e-4
    frozen_blocks: int = 4
    input_size: int = INPUT_SIZE
    rotations: int = ROTATIONS
    dim: int = EMBEDDING_DIM
    backbone: str = DEFAULT_BACKBONE
    device: str = "cpu"
    seed: int = 0
    scale_jitter: float = 0.12
    background_swap: float = 0.5  # share of training crops shown on another background
    # Share of round crops given another outline and trained as a type of their own ("twin"):
    # the network keeps a coin's outline, which no round training type needs but a scalloped or
    # polygonal type added later is told by (``reshape_outlines``).
    outline_twins: float = 0.25
    # Share of training crops lit far too brightly, highlights clipped (``overexpose``): washed
    # tray photos were the commonest of the confident mistakes.
    overexposed: float = OVEREXPOSED_SHARE
    # Shares of training crops under another white balance (a coloured lamp, a camera's
    # setting) and cut tighter at the rim (``white_balance``, ``tighten``): another
    # photographer's batch (docs/experiments/shift.md)
    white_balance: float = 0.0
    tight_crops: float = 0.0
    # Photographed upright, as a museum's catalogue photos of coins with legends are: trained
    # at small tilts only and read at one orientation, so that which way a portrait faces or a
    # legend runs stays information (a tray's coins lie at any angle: off there)
    upright: bool = False

    def __post_init__(self) -> None:
        if self.upright:
            self.rotations = 1


def balanced_batches(labels: np.ndarray, batch_size: int, steps: int, rng: np.random.Generator):
    """Index batches drawing types uniformly, then an image of that type uniformly."""
    by_class = [np.flatnonzero(labels == c) for c in np.unique(labels)]
    for _ in range(steps):
        classes = rng.integers(0, len(by_class), batch_size)
        yield np.array([rng.choice(by_class[c]) for c in classes])


def train_embedding(
    crops: np.ndarray,
    labels: np.ndarray,
    round_flags: np.ndarray,
    config: TrainConfig,
    *,
    on_step: Callable[[int, int, float], None] | None = None,
) -> tuple[CoinNet, dict[str, float]]:
    """Fine-tune a CoinNet on ``crops`` (N, S, S, 3 uint8) with integer ``labels``.

    ``on_step(step, total, loss)`` reports progress. Returns the model (in eval mode) and training
    statistics. CUDA runs with mixed precision.
    """
    reuse_freed_memory()  # each step's activations reused, not faulted in again (1.2x a step)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    device = torch.device(config.device)
    classes = int(labels.max()) + 1
    # Channels-last: the convolutions' fast layout, on the CPU (1.3x-1.9x per step here,
    # `bench/train.py`) and on CUDA.
    model = CoinNet(config.backbone, config.dim).to(device, memory_format=torch.channels_last)
    model.freeze_early(config.frozen_blocks)
    proxies = classes * (2 if config.outline_twins > 0 else 1)
    loss_fn = CosFaceLoss(model.embedding_dim, proxies).to(device)
    augment = Augment(
        config.scale_jitter,
        config.overexposed,
        config.white_balance,
        config.tight_crops,
        degrees=UPRIGHT_TILT if config.upright else 180.0,
    ).to(device)
    generator = torch.Generator().manual_seed(config.seed)
    needs_circles = config.background_swap > 0 or config.outline_twins > 0
    circles = coin_circles(crops) if needs_circles else None
    trunk_params = [p for p in model.trunk.parameters() if p.requires_grad]
    head_params = [*model.head.parameters(), *model.pool.parameters(), *loss_fn.parameters()]
    optimiser = torch.optim.AdamW(
        [
            {"params": trunk_params, "lr": config.lr_trunk},
            {"params": head_params, "lr": config.lr_head},
        ],
        weight_decay=config.weight_decay,
    )
    steps_per_epoch = max(1, math.ceil(len(labels) / config.batch_size))
    total = steps_per_epoch * config.epochs
    warmup = max(1, total // 20)

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimiser, schedule)
    use_amp = device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    model.train()
    started = time.perf_counter()
    twin_crops = 0  # crops trained as an outline twin (a label past the real types)
    losses: list[float] = []
    for step, index in enumerate(balanced_batches(labels, config.batch_size, total, rng)):
        images = to_tensor(crops[index]).to(device, non_blocking=True)
        flags = round_flags[index]
        target = torch.as_tensor(labels[index], device=device)
        with torch.no_grad():
            if circles is not None and config.background_swap > 0:
                images = swap_backgrounds(
                    images, circles[index], config.background_swap, generator, flags
                )
            if circles is not None and config.outline_twins > 0:
                images, reshaped = reshape_outlines(
                    images, circles[index], config.outline_twins, generator, flags
                )
                target = torch.where(reshaped.to(device), target + classes, target)
            images = augment(images, flags).contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
            loss = loss_fn(model(images).float(), target)
        optimiser.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimiser)
        scaler.update()
        scheduler.step()
        losses.append(float(loss.detach()))
        twin_crops += int((target >= classes).sum())
        if on_step:
            on_step(step + 1, total, float(np.mean(losses[-steps_per_epoch:])))
    model.to(memory_format=torch.contiguous_format).eval()  # as a loaded checkpoint is
    seconds = time.perf_counter() - started
    stats = {
        "steps": total,
        "epochs": config.epochs,
        "seconds": round(seconds, 1),
        "images_per_second": round(total * config.batch_size / seconds, 1),
        "final_loss": round(float(np.mean(losses[-steps_per_epoch:])), 4),
        "outline_twin_crops": twin_crops,
    }
    return model, stats
