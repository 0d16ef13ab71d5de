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


def test_a_trained_network_without_its_head_embeds_with_its_trunk(crops, tmp_path: Path) -> None:
    """What ``train_model`` saves: the fine-tuned trunk's pooled features, and a checkpoint
    that rebuilds the network without a head."""
    config = TrainConfig(epochs=1, batch_size=6)
    model, _ = train_embedding(crops, np.array([0, 0, 1, 1, 2, 2]), np.ones(6, bool), config)
    net = model.drop_head()
    assert net.head is None and net.embedding_dim == 1280
    saved = {"backbone": config.backbone, "dim": None, "input_size": config.input_size}
    embedder = Embedder(net, config.input_size, config=saved)
    vectors = embedder.embed_arrays(crops)
    assert vectors.shape == (6, 1280)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    store = LocalStore(tmp_path)
    again = Embedder.load(store, embedder.save(store, "models/1"))
    assert again.model.head is None
    np.testing.assert_allclose(again.embed_arrays(crops), vectors, atol=1e-5)


def test_training_trains_outline_twins_as_types_of_their_own(crops) -> None:
    """Every round crop a twin at share 1 (its label past the real types, which the loss must
    have proxies for), none where no coin is round or the share is 0."""
    labels = np.array([0, 0, 1, 1, 2, 2])
    config = TrainConfig(epochs=1, batch_size=6, input_size=64, outline_twins=1.0)
    _, stats = train_embedding(crops, labels, np.ones(6, bool), config)
    assert stats["outline_twin_crops"] == 6 and np.isfinite(stats["final_loss"])
    _, stats = train_embedding(crops, labels, np.zeros(6, bool), config)
    assert stats["outline_twin_crops"] == 0
    config = TrainConfig(epochs=1, batch_size=6, input_size=64, outline_twins=0.0)
    assert train_embedding(crops, labels, np.ones(6, bool), config)[1]["outline_twin_crops"] == 0


def test_network_without_head_has_imagenet_width() -> None:
    net = CoinNet(dim=None).eval()
    with torch.no_grad():
        out = net(torch.zeros(2, 3, 128, 128))
    assert out.shape == (2, 1280)


def test_background_swap_keeps_the_coin_and_changes_the_table() -> None:
    """Training shows coins on other backgrounds: outside the rim the table changes; inside it
    the design is kept (one gain per channel), and a coin shown on a flat colour mirrors part
    of its tint, as a shiny coin on a red cloth does; on another crop's table the coin is left
    as it was. Coins that are not round, or a probability of zero, are left alone."""
    import cv2

    from coinlens.model.transforms import REFLECTION, swap_backgrounds, to_tensor
    from coinlens.vision.cues import coin_circles

    pictures = np.zeros((12, 96, 96, 3), np.uint8)
    for i, picture in enumerate(pictures):  # a metal disc with a relief ring, each on its table
        picture[:] = (20 * i, 235 - 15 * i, 128)
        cv2.circle(picture, (48, 48), 34, (120, 100, 40), -1)  # dark enough never to clip
        cv2.circle(picture, (48, 48), 24, (96, 76, 30), 2)
    circles = coin_circles(pictures)
    assert np.all(np.abs(circles[:, :2] - 0.5) < 0.1) and np.all(circles[:, 2] > 0.2)
    tensor = to_tensor(pictures)
    swapped = swap_backgrounds(tensor, circles, 1.0, torch.Generator().manual_seed(0))
    before, after = (tensor + 1) / 2, (swapped + 1) / 2
    coords = (np.arange(96) + 0.5) / 96
    tinted = 0
    for i, (cx, cy, r) in enumerate(circles):
        distance = np.hypot(coords[None, :] - cx, coords[:, None] - cy)
        inside = torch.from_numpy(distance < r * 0.9)
        outside = torch.from_numpy((distance > r * 1.1) & (distance < 0.45))
        assert not torch.allclose(swapped[i][:, outside], tensor[i][:, outside])
        gains = after[i][:, inside] / before[i][:, inside]
        assert torch.allclose(gains, gains[:, :1].expand_as(gains), rtol=1e-3)  # design kept
        gain = gains[:, 0]
        if torch.allclose(gain, torch.ones(3), atol=1e-4):
            continue  # shown on another crop's table
        tinted += 1
        assert gain.min() >= 1 - REFLECTION / 2 - 1e-4 and gain.max() <= 1 + REFLECTION + 1e-4
        table = after[i][:, outside].mean(dim=1)
        tint = table / table.mean()
        clear = (tint - 1).abs() > 0.1
        assert ((gain - 1)[clear] * (tint - 1)[clear] > 0).all()  # towards the table's colour
    assert 0 < tinted < len(pictures)
    assert torch.equal(swap_backgrounds(tensor, circles, 0.0), tensor)
    flat = np.zeros(len(pictures), bool)
    assert torch.equal(swap_backgrounds(tensor, circles, 1.0, round_flags=flat), tensor)


def test_augmentation_stays_in_range_and_relit_is_one_lamp_per_batch() -> None:
    """Training's augmentation keeps a batch's shape and range and changes every crop;
    ``relit`` puts a whole batch under one lamp, the same for one seed, and keeps grey grey."""
    from coinlens.model.transforms import Augment, relit, to_tensor

    torch.manual_seed(0)
    pictures = np.stack([coin_picture(64, seed) for seed in range(16)])
    tensor = to_tensor(pictures)
    with torch.no_grad():
        augmented = Augment()(tensor)
    assert augmented.shape == tensor.shape
    assert augmented.min() >= -1 and augmented.max() <= 1
    assert all(not torch.allclose(a, t) for a, t in zip(augmented, tensor, strict=True))

    once, again = relit(pictures[:3], seed=4), relit(pictures[:3], seed=4)
    assert np.array_equal(once, again) and not np.array_equal(once, pictures[:3])
    grey = np.full((2, 4, 4, 3), 128, np.uint8)
    lit = relit(grey, seed=1).astype(int)
    assert np.ptp(lit, axis=-1).max() <= 1 and np.ptp(lit) <= 1  # one lamp: both alike


def test_upright_training_keeps_which_way_a_coin_faces() -> None:
    """``--upright``: crops lean a few degrees at most, so a coin turned upside down stays
    another picture (any angle otherwise), and the model reads one orientation."""
    from coinlens.model.train import UPRIGHT_TILT
    from coinlens.model.transforms import Augment, to_tensor

    torch.manual_seed(0)
    picture = coin_picture(64, seed=3)
    picture[8:24, 20:44] = 255  # a mark above the centre: which way is up
    tensor = to_tensor(np.stack([picture] * 32))
    upside_down = torch.flip(tensor, dims=(2, 3))

    def nearer_upright(augment: Augment) -> float:
        with torch.no_grad():
            out = augment(tensor)
        ahead = ((out - tensor) ** 2).mean(dim=(1, 2, 3))
        behind = ((out - upside_down) ** 2).mean(dim=(1, 2, 3))
        return float((ahead < behind).float().mean())

    assert nearer_upright(Augment(degrees=UPRIGHT_TILT)) == 1.0
    assert nearer_upright(Augment()) < 0.9  # any angle: often nearer the turned picture
    assert TrainConfig(upright=True).rotations == 1 and TrainConfig().rotations == 2


def test_overexposure_washes_a_crop_out_as_a_lamp_does() -> None:
    """A washed photo: every pixel brighter by one gain in the measured range, highlights clipped
    at white, dark pixels still dark; the ordering of brightnesses kept (the design survives)."""
    from coinlens.model.transforms import OVEREXPOSED_GAIN, overexpose, to_tensor

    torch.manual_seed(0)
    unit = torch.rand(8, 3, 16, 16)
    washed = overexpose(unit)
    assert washed.min() >= 0 and washed.max() == 1
    gains = washed[unit < 0.4] / unit[unit < 0.4]
    assert gains.min() >= OVEREXPOSED_GAIN[0] - 1e-5 and gains.max() <= OVEREXPOSED_GAIN[1] + 1e-5
    for before, after in zip(unit, washed, strict=True):  # one gain per image
        low = before < 0.4
        assert torch.allclose(after[low] / before[low], (after[low] / before[low])[0], rtol=1e-4)
    assert (washed >= unit).all()

    # and training's augmentation washes out the share it is given, under the same draws
    from coinlens.model.transforms import Augment

    pictures = to_tensor(np.stack([coin_picture(64, seed) for seed in range(16)]))
    white = {}
    for share in (0.0, 1.0):
        torch.manual_seed(0)
        with torch.no_grad():
            white[share] = (Augment(overexposed=share)(pictures) > 0.99).float().mean()
    assert white[1.0] > 2 * white[0.0] + 0.05


def test_hue_turn_is_kornias_and_the_jitter_keeps_what_it_does_not_choose() -> None:
    """``shift_hue`` is kornia's ``adjust_hue`` in closed form (greys and channel ties
    included), and ``ColourJitter`` leaves a batch alone at chance zero."""
    from kornia.enhance import adjust_hue

    from coinlens.model.transforms import ColourJitter, shift_hue

    torch.manual_seed(0)
    batch = torch.rand(6, 3, 16, 16)
    batch[:, :, :4] = 0.5  # grey
    batch[:, 1, 4:8] = batch[:, 0, 4:8]  # red and green tie
    turns = torch.linspace(-0.45, 0.45, 6)
    assert torch.allclose(shift_hue(batch, turns), adjust_hue(batch, turns * 2 * np.pi), atol=1e-5)
    assert torch.equal(ColourJitter(p=0.0)(batch), batch)
    assert not torch.allclose(ColourJitter(p=1.0)(batch), batch)


def test_colour_jitter_draws_kornias_lightings() -> None:
    """``ColourJitter`` is kornia's ColorJitter made faster, not another augmentation: over 256
    crops, the 10/50/90% quantiles of what a lighting does (a channel's gain, the chroma, the
    hue turn of the crop's mean colour, the contrast) match kornia's under the same ranges,
    closer than a jitter missing its saturation or contrast change would (measured: 0.015 and
    0.034 off), or one turning hue three times as far (0.46)."""
    import kornia.augmentation as K
    from kornia.color import rgb_to_hsv

    from coinlens.model.transforms import LIGHTING, ColourJitter

    pictures = np.repeat(np.stack([coin_picture(32, seed) for seed in range(8)]), 32, axis=0)
    batch = torch.from_numpy(pictures).permute(0, 3, 1, 2).float() / 255

    def effects(jitter: torch.nn.Module) -> np.ndarray:
        torch.manual_seed(0)
        with torch.no_grad():
            lit = jitter(batch)
        mean, base = lit.mean(dim=(2, 3)), batch.mean(dim=(2, 3))
        hue = rgb_to_hsv(mean[:, :, None, None])[:, 0, 0, 0]
        base_hue = rgb_to_hsv(base[:, :, None, None])[:, 0, 0, 0]
        turn = torch.remainder(hue - base_hue + np.pi, 2 * np.pi) - np.pi
        chroma = (lit.max(dim=1).values - lit.min(dim=1).values).mean(dim=(1, 2))
        found = torch.stack([mean[:, 1] / base[:, 1], chroma, turn, lit.std(dim=(1, 2, 3))], 1)
        return np.quantile(found.numpy(), [0.1, 0.5, 0.9], axis=0)

    kornias = effects(K.ColorJitter(**LIGHTING, p=1.0))
    ours = effects(ColourJitter(LIGHTING, p=1.0))
    tolerance = np.array([0.02, 0.01, 0.08, 0.01])  # gain, chroma, hue turn (radians), contrast
    assert np.all(np.abs(ours - kornias) < tolerance)


def test_outline_twins_cut_into_the_rim_and_leave_the_rest() -> None:
    """A reshaped coin keeps its middle and its table; only a band just inside the rim turns to
    table, and coins that are not round, or a probability of zero, are left alone."""
    import cv2

    from coinlens.model.transforms import reshape_outlines, to_tensor
    from coinlens.vision.cues import coin_circles

    pictures = np.zeros((4, 96, 96, 3), np.uint8)
    for i, picture in enumerate(pictures):
        picture[:] = (60 * i, 235 - 50 * i, 128)
        cv2.circle(picture, (48, 48), 34, (200, 160, 60), -1)
    circles = coin_circles(pictures)
    tensor = to_tensor(pictures)
    reshaped, chosen = reshape_outlines(tensor, circles, 1.0, torch.Generator().manual_seed(0))
    assert chosen.all()
    coords = (np.arange(96) + 0.5) / 96
    for i, (cx, cy, r) in enumerate(circles):
        distance = np.hypot(coords[None, :] - cx, coords[:, None] - cy)
        kept = torch.from_numpy((distance < r * 0.85) | (distance > r * 1.1))
        band = torch.from_numpy((distance > r * 0.92) & (distance < r * 0.98))
        assert torch.allclose(reshaped[i][:, kept], tensor[i][:, kept])
        changed = (reshaped[i][:, band] - tensor[i][:, band]).abs().amax(0) > 0.2
        assert 0 < int(changed.sum()) < int(band.sum())  # bitten in places, not all round
    unchanged, none = reshape_outlines(tensor, circles, 0.0)
    assert torch.equal(unchanged, tensor) and not none.any()
    flat = np.zeros(4, bool)
    assert torch.equal(reshape_outlines(tensor, circles, 1.0, round_flags=flat)[0], tensor)
