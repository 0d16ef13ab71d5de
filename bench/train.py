"""Training throughput on the CPU: one optimisation step, both memory layouts, and the real loop.

Runs, in one process:
- a training step (forward, CosFace loss, backward, AdamW) of the default network at
  ``INPUT_SIZE`` (192 px), batch 48, the first 4 blocks frozen, with the batch and weights in
  the default (NCHW) layout and in channels-last (the layout ``train_embedding`` uses);
- the augmentation alone (background swap, then ``Augment``) of one batch of euro-kaa crops,
  as the training loop runs it before each step;
- ``train_embedding`` itself on euro-kaa ``train/`` crops for ``--steps`` steps: augmentation,
  background swap and the step, as ``coinlens train`` runs them.

Freed memory is kept for reuse (``coinlens.model.memory``) from the start, as in training, so
every part is measured as training runs it (``"reuse_freed_memory"``: whether it applied).

Prints and writes JSON (``bench/results/train.json``). Usage:
``python bench/train.py [--data DIR] [--steps N] [--repeats N]``.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from coinlens.identify.evaluate import load_labelled
from coinlens.model.memory import reuse_freed_memory
from coinlens.model.network import CoinNet, CosFaceLoss
from coinlens.model.train import INPUT_SIZE, TrainConfig, train_embedding
from coinlens.model.transforms import Augment, swap_backgrounds, to_tensor
from coinlens.vision.cues import coin_circles
from common import bench_parser, write_report

BATCH = 48


def step_seconds(memory_format: torch.memory_format, repeats: int) -> float:
    """Median seconds of one training step on a random batch (after two warm-up steps)."""
    torch.manual_seed(0)
    model = CoinNet(dim=256).to(memory_format=memory_format)
    model.freeze_early(TrainConfig.frozen_blocks)
    model.train()
    loss_fn = CosFaceLoss(model.embedding_dim, 8)
    params = [p for p in model.parameters() if p.requires_grad] + list(loss_fn.parameters())
    optimiser = torch.optim.AdamW(params, lr=1e-4)
    images = torch.randn(BATCH, 3, INPUT_SIZE, INPUT_SIZE).contiguous(memory_format=memory_format)
    labels = torch.randint(0, 8, (BATCH,))
    times = []
    for _ in range(repeats + 2):
        started = time.perf_counter()
        loss = loss_fn(model(images), labels)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        times.append(time.perf_counter() - started)
    return float(np.median(times[2:]))


def augment_seconds(crops: np.ndarray, rounds: np.ndarray, repeats: int) -> float:
    """Median seconds to prepare one training batch: background swap and ``Augment``."""
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    circles = coin_circles(crops)
    augment = Augment(TrainConfig.scale_jitter, TrainConfig.overexposed)
    generator = torch.Generator().manual_seed(0)
    times = []
    for _ in range(repeats + 2):
        index = rng.integers(0, len(crops), BATCH)
        started = time.perf_counter()
        with torch.no_grad():
            images = to_tensor(crops[index])
            images = swap_backgrounds(
                images, circles[index], TrainConfig.background_swap, generator, rounds[index]
            )
            augment(images, rounds[index])
        times.append(time.perf_counter() - started)
    return float(np.median(times[2:]))


def main() -> None:
    parser = bench_parser("train", __doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="steps of the real training loop")
    parser.add_argument("--repeats", type=int, default=6, help="timed steps per layout")
    args = parser.parse_args()
    reused = reuse_freed_memory()  # as training runs: every part measured the same way
    contiguous = step_seconds(torch.contiguous_format, args.repeats)
    channels_last = step_seconds(torch.channels_last, args.repeats)
    report = {
        "threads": torch.get_num_threads(),
        "reuse_freed_memory": reused,
        "batch": BATCH,
        "input_size": INPUT_SIZE,
        "step_seconds": {"nchw": round(contiguous, 3), "channels_last": round(channels_last, 3)},
        "channels_last_speedup": round(contiguous / channels_last, 2),
    }
    folder = args.data / "euro-kaa" / "train"
    if folder.is_dir():
        crops = load_labelled(folder, INPUT_SIZE)
        names = sorted(set(crops.labels))
        labels = np.array([names.index(crops.labels[g]) for g in crops.group_of_crop])
        report["augment_seconds_per_batch"] = round(
            augment_seconds(np.stack(crops.crops), np.array(crops.rounds), 4 * args.repeats), 3
        )
        steps_per_epoch = -(-len(labels) // BATCH)
        config = TrainConfig(epochs=1)
        rng = np.random.default_rng(0)  # one epoch of a random subset = --steps steps
        subset = rng.permutation(len(labels))[: args.steps * BATCH]
        _, stats = train_embedding(
            np.stack(crops.crops)[subset], labels[subset], np.array(crops.rounds)[subset], config
        )
        per_step = stats["seconds"] / stats["steps"]
        report["train_embedding"] = {
            "crops": len(labels),
            **stats,
            "seconds_per_step": round(per_step, 3),
            "projected_seconds_12_epochs": round(per_step * 12 * steps_per_epoch),
        }
    else:
        report["train_embedding"] = f"skipped: {folder} not found"
    write_report(args.out, report)


if __name__ == "__main__":
    main()
