"""Freed activations stay in the process for the next step (``coinlens.model.memory``).

Asserted through glibc's own accounting (``mallinfo2``): where a block of a training step's
size is served from and whether its memory is still held once freed. The kernel's page-fault
counter, which shows what this saves (``bench/train.py``), is no test: it depends on how many
steps the heap takes to settle, which varies with the environment (a CI run counted two whole
tensors where none were expected), and kernel work such as NUMA balancing can add faults.
"""

from __future__ import annotations

import ctypes
import subprocess
import sys

import pytest

MB = 2**20

# Allocates a 256 MB tensor (a training step's activations), uses and frees it, 32 times; prints
# the mmapped bytes while the last lives, the free bytes the heap keeps once it is freed, and
# how much the heap grew over the last 8 steps. The heap may grow for the first few: torch
# asks for 64-byte aligned blocks, which do not fit the exact hole a freed one leaves until
# holes merge (1 to 7 steps here, over 26 hash seeds); then it serves each step from memory
# it holds.
HEAP = """
import ctypes, sys, torch

class Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd",
        "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

mallinfo2 = ctypes.CDLL(None).mallinfo2
mallinfo2.restype = Mallinfo2
applied = False
if sys.argv[1] == "reuse":
    from coinlens.model.memory import reuse_freed_memory
    applied = reuse_freed_memory()
elif sys.argv[1] == "train":
    import numpy as np
    from coinlens.model.train import TrainConfig, train_embedding
    crops = np.random.default_rng(0).integers(0, 255, (8, 64, 64, 3), dtype=np.uint8)
    config = TrainConfig(epochs=1, batch_size=8, input_size=64, background_swap=0.0)
    train_embedding(crops, np.array([0, 1] * 4), np.ones(8, bool), config)
heap = []
for step in range(32):
    tensor = torch.ones(64 * 2**20)
    tensor.sum()
    mapped = mallinfo2().hblkhd
    del tensor
    heap.append(mallinfo2().arena)
print(applied, mapped, mallinfo2().fordblks, heap[-1] - heap[-9])
"""


def _heap(mode: str) -> tuple[bool, int, int, int]:
    """(applied, bytes mmapped while the tensor lives, free bytes the heap keeps after it,
    bytes the heap grew over the last 8 steps)."""
    out = subprocess.run(
        [sys.executable, "-c", HEAP, mode], capture_output=True, text=True, check=True
    ).stdout.split()
    return out[0] == "True", int(out[1]), int(out[2]), int(out[3])


def _has_glibc_mallinfo2() -> bool:
    try:
        return hasattr(ctypes.CDLL(None), "mallinfo2")
    except OSError:
        return False


glibc_only = pytest.mark.skipif(
    not sys.platform.startswith("linux") or not _has_glibc_mallinfo2(),
    reason="glibc's mallinfo2 and mallopt (glibc 2.33 or later)",
)


@glibc_only
def test_a_freed_batch_stays_in_the_heap_for_the_next_one() -> None:
    applied, mapped, kept, grown = _heap("reuse")
    _, mapped_by_default, kept_by_default, _ = _heap("default")
    assert applied
    # glibc's default: a block this large is mapped on its own and handed back when freed,
    # so the next step faults every page in again
    assert mapped_by_default >= 256 * MB
    assert kept_by_default < 256 * MB
    # kept: served from the heap, still held once freed, and used again (the heap stopped
    # growing; trimmed, it would have to grow back each step)
    assert mapped < 256 * MB
    assert kept >= 256 * MB
    assert grown == 0


@glibc_only
def test_training_keeps_freed_memory_for_its_next_step() -> None:
    """Training itself leaves the setting on (nothing else in the process asks for it)."""
    _, mapped, kept, grown = _heap("train")
    assert mapped < 256 * MB
    assert kept >= 256 * MB
    assert grown == 0
