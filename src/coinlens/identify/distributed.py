"""Embedding on a Ray cluster: Ray Data ``map_batches`` over stored crops with an actor pool.

Each actor opens the object store and loads the model version once, then embeds batches of crops
(GPU when the cluster gives it one, else ONNX Runtime on the CPU, exactly as the local engine).
The driver keeps everything else (matching, calibration, catalogue writes) in the same code as
the local engine, so both engines give the same suggestions. ``ray`` is an optional extra:
``pip install 'coinlens[ray]'``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from coinlens.config import Settings
from coinlens.identify.engine import PRETRAINED_INPUT_SIZE, CropRef, embed_loaded, load_crops
from coinlens.model.embedder import Embedder
from coinlens.storage import open_store
from coinlens.vision.cues import CUE_NAMES

RAY_CHUNK = 1024  # specimens matched and committed per Ray Data run


class RayUnavailable(RuntimeError):
    """Ray is not installed or the cluster cannot be reached."""


class CropEmbedder:
    """A Ray Data actor: one store connection and one model load, many batches."""

    def __init__(self, settings: Settings, model_spec: dict[str, Any]) -> None:
        import torch

        self.store = open_store(settings.store_url, settings)
        device = "cuda" if torch.cuda.is_available() else "cpu"
        if model_spec.get("artefacts"):
            self.embedder = Embedder.load(self.store, model_spec["artefacts"], device=device)
        else:
            self.embedder = Embedder.pretrained(
                model_spec["backbone"], PRETRAINED_INPUT_SIZE, device=device
            )
        self.embedder.use_onnx()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        refs = [
            CropRef(int(i), 0, "", str(key), bool(flag), "", framed=bool(framed))
            for i, key, flag, framed in zip(
                batch["image_id"], batch["crop_key"], batch["round"], batch["framed"], strict=True
            )
        ]
        arrays = load_crops(self.store, refs, self.embedder.input_size)
        vectors, cues = embed_loaded(self.embedder, arrays, refs)
        return {"image_id": batch["image_id"], "vector": vectors, "cues": cues}


def start_ray(address: str | None) -> None:
    """Connect to ``address`` (``ray://…`` or ``auto``), or start a local Ray."""
    try:
        import ray
    except ImportError:
        raise RayUnavailable("--engine ray needs Ray: pip install 'coinlens[ray]'") from None
    if ray.is_initialized():
        if address is None:
            return
        ray.shutdown()  # asked for a particular cluster: connect to that one
    try:
        ray.init(
            address=address,
            num_cpus=None if address else os.cpu_count(),
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.WARNING,
        )
    except Exception as exc:  # Ray raises many kinds; the message says which
        raise RayUnavailable(f"cannot start or reach Ray ({address or 'local'}): {exc}") from None
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # coinlens shows its own
    context.print_on_execution_start = False
    context.enable_auto_log_stats = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)


class RayEmbedding:
    """``embed(refs) -> (vectors, cues)`` for ``identify_specimens``, run on Ray."""

    def __init__(
        self,
        settings: Settings,
        model_spec: dict[str, Any],
        *,
        address: str | None = None,
        actors: int | None = None,
        batch_size: int = 64,
    ) -> None:
        start_ray(address)
        import ray

        self.settings = settings
        self.model_spec = model_spec
        gpus = int(ray.cluster_resources().get("GPU", 0))
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.actors = actors or max(1, gpus or cpus)
        self.gpus_per_actor = 1 if gpus else 0
        self.batch_size = batch_size

    def __call__(self, refs: Sequence[CropRef]) -> tuple[np.ndarray, np.ndarray]:
        import ray

        if not refs:
            return np.zeros((0, 0), np.float32), np.zeros((0, len(CUE_NAMES)), np.float32)
        items = [
            {"image_id": r.image_id, "crop_key": r.crop_key, "round": r.round, "framed": r.framed}
            for r in refs
        ]
        dataset = ray.data.from_items(items).map_batches(
            CropEmbedder,
            fn_constructor_args=(self.settings, self.model_spec),
            batch_size=self.batch_size,
            batch_format="numpy",
            concurrency=min(self.actors, max(1, len(refs) // self.batch_size + 1)),
            num_gpus=self.gpus_per_actor,
        )
        vectors: dict[int, np.ndarray] = {}
        cues: dict[int, np.ndarray] = {}
        for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
            for image_id, vector, cue in zip(
                batch["image_id"], batch["vector"], batch["cues"], strict=True
            ):
                vectors[int(image_id)], cues[int(image_id)] = vector, cue
        return (
            np.stack([vectors[r.image_id] for r in refs]).astype(np.float32),
            np.stack([cues[r.image_id] for r in refs]).astype(np.float32),
        )
