"""The embedding network: unit vectors, rotation tolerance, ONNX = PyTorch, checkpoints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from coinlens.model.embedder import Embedder
from coinlens.model.network import CoinNet
from coinlens.model.train import TrainConfig, train_embedding
from coinlens.storage import LocalStore
from helpers import coin_picture


@pytest.fixture(scope="module")
def crops() -> np.ndarray:
    return np.stack([coin_picture(128, seed) for seed in range(6)])


@pytest.fixture(scope="module")
def pretrained() -> Embedder:
    return Embedder.pretrained()


def test_pretrained_embeddings_are_unit_vectors(pretrained: Embedder, crops) -> None:
    vectors = pretrained.embed_arrays(crops)
    assert vectors.shape == (6, 1280)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(vectors[0], vectors[1])


def test_rotated_coin_embeds_the_same(pretrained: Embedder, crops) -> None:
    turned = np.rot90(crops, k=1, axes=(1, 2))
    a, b = pretrained.embed_arrays(crops), pretrained.embed_arrays(turned)
    assert np.min(np.sum(a * b, axis=1)) > 0.999


def test_onnx_runtime_matches_pytorch(crops) -> None:
    embedder = Embedder.pretrained()
    reference = embedder.embed_arrays(crops)
    assert embedder.use_onnx()
    np.testing.assert_allclose(embedder.embed_arrays(crops), reference, atol=1e-4)


def test_training_runs_and_checkpoint_round_trips(crops, tmp_path: Path) -> None:
    labels = np.array([0, 0, 1, 1, 2, 2])
    config = TrainConfig(epochs=1, batch_size=6)
    model, stats = train_embedding(crops, labels, np.ones(6, bool), config)
    assert stats["steps"] == 1 and np.isfinite(stats["final_loss"])
    embedder = Embedder(
        model,
        config.input_size,
        config={"backbone": config.backbone, "dim": 256, "input_size": 128},
    )
    vectors = embedder.embed_arrays(crops)
    assert vectors.shape == (6, 256)
    store = LocalStore(tmp_path)
    keys = embedder.save(store, "models/1")
    again = Embedder.load(store, keys)
    np.testing.assert_allclose(again.embed_arrays(crops), vectors, atol=1e-5)


def test_network_without_head_has_imagenet_width() -> None:
    net = CoinNet(dim=None).eval()
    with torch.no_grad():
        out = net(torch.zeros(2, 3, 128, 128))
    assert out.shape == (2, 1280)
