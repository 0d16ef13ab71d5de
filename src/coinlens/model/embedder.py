"""Turning coin crops into embeddings, fast: batched, rotation-averaged, ONNX Runtime on the CPU.

A coin can lie at any angle, so every crop is embedded at several exact rotations (no
resampling) and the vectors averaged: 0, 90, 180 and 270 degrees for the pretrained backbone, 0
and 90 for a trained model, which learnt any angle from its augmentation (as accurate on euro-kaa,
twice as fast). On the CPU the trained network runs in
ONNX Runtime, which is markedly faster than eager PyTorch for this small convolutional network;
PyTorch stays the reference (and the path on CUDA).
"""

from __future__ import annotations

import io
import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from coinlens.model.network import DEFAULT_BACKBONE, CoinNet
from coinlens.model.transforms import crop_to_array, rotations, to_tensor
from coinlens.storage import ObjectStore

DEFAULT_ROTATIONS = 4


class _RotationAveraged(torch.nn.Module):
    """The network wrapped so that one call embeds all rotations and averages them."""

    def __init__(self, model: CoinNet, count: int) -> None:
        super().__init__()
        self.model = model
        self.count = count

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        total = sum(self.model(turned) for turned in rotations(images, self.count))
        return F.normalize(total, dim=1)


@dataclass
class Embedder:
    """Embeds crops with one model; ``config`` is what a checkpoint needs to rebuild it."""

    model: CoinNet
    input_size: int
    rotation_count: int = DEFAULT_ROTATIONS
    device: str = "cpu"
    batch_size: int = 64
    config: dict[str, Any] = field(default_factory=dict)
    _onnx: Any = None

    @classmethod
    def pretrained(
        cls, backbone: str = DEFAULT_BACKBONE, input_size: int = 128, device: str = "cpu"
    ) -> Embedder:
        """The ImageNet backbone alone: identification works before the first training."""
        model = CoinNet(backbone, dim=None).eval().to(device)
        config = {"backbone": backbone, "dim": None, "input_size": input_size}
        return cls(model, input_size, device=device, config=config)

    @property
    def dim(self) -> int:
        return self.model.embedding_dim

    def _wrapped(self) -> _RotationAveraged:
        return _RotationAveraged(self.model, self.rotation_count).eval()

    def use_onnx(self) -> bool:
        """Switch CPU inference to ONNX Runtime; returns False (and stays on PyTorch) if the
        export or runtime is unavailable."""
        if self.device != "cpu":
            return False
        try:
            import onnxruntime as ort
        except ImportError:
            return False
        buffer = io.BytesIO()
        dummy = torch.zeros(2, 3, self.input_size, self.input_size)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    self._wrapped(),
                    (dummy,),
                    buffer,
                    input_names=["images"],
                    output_names=["embeddings"],
                    dynamic_axes={"images": {0: "n"}, "embeddings": {0: "n"}},
                    opset_version=17,
                    dynamo=False,
                )
        except Exception:
            return False
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = max(1, torch.get_num_threads())
        self._onnx = ort.InferenceSession(
            buffer.getvalue(), options, providers=["CPUExecutionProvider"]
        )
        return True

    def embed_arrays(self, crops: np.ndarray, round_flags: np.ndarray | None = None) -> np.ndarray:
        """(N, S, S, 3) uint8 crops -> (N, dim) float32 unit vectors."""
        if len(crops) == 0:
            return np.zeros((0, self.dim), np.float32)
        flags = np.ones(len(crops)) if round_flags is None else np.asarray(round_flags)
        out = []
        for start in range(0, len(crops), self.batch_size):
            batch = to_tensor(
                crops[start : start + self.batch_size], flags[start : start + self.batch_size]
            )
            if self._onnx is not None:
                out.append(self._onnx.run(None, {"images": batch.numpy()})[0])
                continue
            with torch.inference_mode():
                with torch.autocast("cuda", enabled=self.device.startswith("cuda")):
                    vectors = self._wrapped()(batch.to(self.device))
                out.append(vectors.float().cpu().numpy())
        return np.concatenate(out).astype(np.float32)

    def embed_images(self, crops: Sequence[Image.Image], round_flags=None) -> np.ndarray:
        arrays = np.stack([crop_to_array(crop, self.input_size) for crop in crops])
        return self.embed_arrays(arrays, round_flags)

    # -- checkpoints ---------------------------------------------------------------------------

    def checkpoint(self) -> tuple[bytes, dict[str, Any]]:
        """(weights, config): what rebuilds this embedder elsewhere (``from_checkpoint``)."""
        buffer = io.BytesIO()
        torch.save(self.model.state_dict(), buffer)
        return buffer.getvalue(), self.config

    @classmethod
    def from_checkpoint(
        cls, weights: bytes, config: dict[str, Any], device: str = "cpu"
    ) -> Embedder:
        model = CoinNet(config["backbone"], config["dim"], pretrained=False)
        state = torch.load(io.BytesIO(weights), map_location="cpu", weights_only=True)
        model.load_state_dict(state)
        model.eval().to(device)
        turns = config.get("rotations", DEFAULT_ROTATIONS)  # models saved before: 4
        return cls(model, config["input_size"], turns, device=device, config=config)

    def save(self, store: ObjectStore, prefix: str) -> dict[str, str]:
        """Write weights and config under ``prefix``; returns the keys (ModelVersion.artefacts)."""
        weights, config = self.checkpoint()
        keys = {"weights": f"{prefix}/model.pt", "config": f"{prefix}/config.json"}
        store.put(keys["weights"], weights)
        store.put(keys["config"], json.dumps(config, indent=2).encode())
        return keys

    @classmethod
    def load(cls, store: ObjectStore, artefacts: dict[str, str], device: str = "cpu") -> Embedder:
        config = json.loads(store.get(artefacts["config"]))
        return cls.from_checkpoint(store.get(artefacts["weights"]), config, device)
