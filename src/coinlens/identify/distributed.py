"""The Ray engine: localisation and embedding as Ray Data ``map_batches`` over actor pools.

- ``RayPreparation`` reads, hashes, decodes and localises photos and stores their crops
  (``coinlens.ingest.prepare_photo`` in each actor, which opens the object store once).
- ``RayEmbedding`` embeds stored crops: each actor loads the model once (a GPU per actor when the
  cluster has them, else ONNX Runtime on the CPU, exactly as the local engine).

The driver keeps everything else (catalogue transactions, matching, calibration) in the same code
as the local engine, so both engines give the same catalogue and the same suggestions. Workers
read photos and write crops through the object store, so on a cluster of several machines the
store is a bucket (``s3://``) and photos come from a bucket or a shared file system. ``ray`` is an
optional extra: ``pip install 'coinlens[ray]'``.
"""

from __future__ import annotations

import logging
import os
import pickle
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from coinlens.catalog import Catalog
from coinlens.config import Settings
from coinlens.identify.engine import PRETRAINED_INPUT_SIZE, CropRef, embed_loaded, load_crops
from coinlens.ingest import IngestItem, Outcome
from coinlens.ingest.runner import (
    AlreadyThere,
    KnownPhotos,
    Prepared,
    prepare_photo,
    recorded_photos,
)
from coinlens.model.embedder import Embedder
from coinlens.storage import open_store
from coinlens.vision.cues import CUE_NAMES

RAY_CHUNK = 1024  # specimens matched and committed per Ray Data run


class RayUnavailable(RuntimeError):
    """Ray is not installed or the cluster cannot be reached."""


class PhotoPreparer:
    """A Ray Data actor: one store connection, many photos read, localised and stored."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.store = open_store(settings.store_url, settings)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        results = []
        for item_bytes, known_bytes in zip(batch["item"], batch["known"], strict=True):
            item, known = pickle.loads(item_bytes), pickle.loads(known_bytes)
            results.append(pickle.dumps(prepare_photo(item, self.store, self.settings, known)))
        return {"index": batch["index"], "result": np.array(results, dtype=object)}


class CropEmbedder:
    """A Ray Data actor: one store connection and one model load, many batches."""

    def __init__(self, settings: Settings, model_spec: dict[str, Any]) -> None:
        import torch

        self.store = open_store(settings.store_url, settings)
        device = "cuda" if torch.cuda.is_available() else "cpu"
        if model_spec.get("checkpoint"):  # a model still being trained, not stored yet
            self.embedder = Embedder.from_checkpoint(*model_spec["checkpoint"], device=device)
        elif model_spec.get("artefacts"):
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


def _actor_count(actors: int | None) -> tuple[int, int]:
    """(actors, GPUs per actor) for this cluster: one actor per GPU, else one per CPU."""
    import ray

    gpus = int(ray.cluster_resources().get("GPU", 0))
    cpus = int(ray.cluster_resources().get("CPU", 1))
    return actors or max(1, gpus or cpus), 1 if gpus else 0


def _portable(item: IngestItem) -> IngestItem:
    """The item as a worker needs it: a file by its absolute path (workers have their own
    working folder); what gets recorded is still the driver's own item."""
    return item if item.fetch is not None else replace(item, path=item.path.resolve())


class RayPreparation:
    """``ingest_items(preparation=…)`` on Ray: photos prepared by an actor pool, handed back as
    they finish, ``RAY_CHUNK`` photos per Ray Data run (bounded memory on the driver).

    Workers cannot ask the catalogue (``already_there`` needs it), so each photo travels with a
    snapshot of what its accession already holds (``KnownPhotos``), taken per chunk."""

    def __init__(
        self,
        settings: Settings,
        catalog: Catalog,
        *,
        address: str | None = None,
        actors: int | None = None,
        batch_size: int = 4,
    ) -> None:
        start_ray(address)
        self.settings = settings
        self.catalog = catalog
        self.actors = _actor_count(actors)[0]
        self.batch_size = batch_size

    def __call__(
        self, items: Sequence[IngestItem], already_there: AlreadyThere
    ) -> Iterator[tuple[IngestItem, Prepared | Outcome]]:
        import ray

        for start in range(0, len(items), RAY_CHUNK):
            chunk = items[start : start + RAY_CHUNK]
            recorded = recorded_photos(self.catalog, chunk)  # the driver asks the catalogue
            rows = [
                {
                    "index": number,
                    "item": pickle.dumps(_portable(item)),
                    "known": pickle.dumps(
                        KnownPhotos({item.accession: recorded.get(item.accession, set())})
                    ),
                }
                for number, item in enumerate(chunk)
            ]
            dataset = ray.data.from_items(rows).map_batches(
                PhotoPreparer,
                fn_constructor_args=(self.settings,),
                batch_size=self.batch_size,
                batch_format="numpy",
                compute=ray.data.ActorPoolStrategy(
                    size=min(self.actors, max(1, len(chunk) // self.batch_size))
                ),
            )
            for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
                for number, result in zip(batch["index"], batch["result"], strict=True):
                    yield chunk[int(number)], pickle.loads(result)


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
        self.settings = settings
        self.model_spec = model_spec
        self.actors, self.gpus_per_actor = _actor_count(actors)
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
            compute=ray.data.ActorPoolStrategy(
                size=min(self.actors, max(1, len(refs) // self.batch_size + 1))
            ),
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
