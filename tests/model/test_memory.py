"""Freed activations are reused, not faulted in again from the OS (``coinlens.model.memory``)."""

from __future__ import annotations

import subprocess
import sys

import pytest

# Allocates and frees a 256 MB tensor twelve times, as a training step its activations; prints
# the page faults of the last four (the first ones map the heap: an aligned block does not fit
# the exact hole its predecessor left, so the heap settles after a few).
FAULTS = """
import resource, sys, torch
from coinlens.model.memory import reuse_freed_memory
applied = reuse_freed_memory() if sys.argv[1] == "reuse" else False
for step in range(12):
    if step == 8:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    torch.ones(64 * 2**20).sum()
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str) -> tuple[bool, int]:
    out = subprocess.run(
        [sys.executable, "-c", FAULTS, mode], capture_output=True, text=True, check=True
    ).stdout.split()
    return out[0] == "True", int(out[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")
def test_a_freed_batch_is_reused_without_faulting_its_pages_in_again() -> None:
    applied, kept = _faults("reuse")
    _, returned = _faults("default")
    pages = 4 * 256 * 2**20 // 4096  # four tensors of 256 MB in 4 KB pages
    assert applied
    assert returned > pages * 3 // 4  # each tensor mapped afresh and faulted in
    assert kept < pages // 5  # the same heap memory used again (0 in 8 of 8 runs)


# Trains for one step on a few random crops, then allocates and frees as FAULTS does, without
# asking for the setting itself: training must have left it on.
AFTER_TRAINING = """
import resource, numpy as np
from coinlens.model.train import TrainConfig, train_embedding
crops = np.random.default_rng(0).integers(0, 255, (8, 64, 64, 3), dtype=np.uint8)
labels = np.array([0, 1] * 4)
config = TrainConfig(epochs=1, batch_size=8, input_size=64, background_swap=0.0)
train_embedding(crops, labels, np.ones(8, bool), config)
import torch
for step in range(12):
    if step == 8:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    torch.ones(64 * 2**20).sum()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")
def test_training_keeps_freed_memory_for_its_next_step() -> None:
    out = subprocess.run(
        [sys.executable, "-c", AFTER_TRAINING], capture_output=True, text=True, check=True
    ).stdout.split()
    pages = 4 * 256 * 2**20 // 4096
    assert int(out[-1]) < pages // 5
