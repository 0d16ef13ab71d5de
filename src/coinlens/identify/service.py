"""A long-lived identifier: the current model, its reference index and matcher, loaded once.

The command line builds one per run; the web app keeps one for its lifetime, so a query costs an
embedding and a search, and a reviewer's accepted coin joins the references at once (without
retraining). It reloads by itself when ``coinlens train`` made a newer model version.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image as PILImage
from sqlalchemy import select

from coinlens.catalog import Home, Image, ModelVersion
from coinlens.identify.engine import (
    CurrentModel,
    EmbedCrops,
    Matcher,
    add_refs,
    crop_refs,
    current_model,
    embed_refs,
    images_of,
    store_verifier,
    sync_index,
    type_references,
    with_collections,
)
from coinlens.identify.partial import levels_of, type_records
from coinlens.identify.scoring import Suggestion, explain
from coinlens.identify.verify import decode_views, keypoint_photo
from coinlens.index import ReferenceIndex
from coinlens.model.transforms import crop_to_array
from coinlens.vision import encode_jpeg, load_image
from coinlens.vision.cues import crop_cues
from coinlens.vision.localise import coin_sides, crop_coin, locate_coins


class NoReferences(RuntimeError):
    """Nothing is catalogued yet, so there is nothing to compare a coin with."""


@dataclass(frozen=True)
class QueryCoin:
    """One side of a coin to identify: its crop as stored (JPEG bytes) and which side it is."""

    crop_jpeg: bytes
    side: str
    round: bool = True
    framed: bool = False  # a fixed window around the coin (layout "crop"): its size is a cue
    picture_jpeg: bytes | None = None  # the whole photo, where this side was cut from a pair


def coins_in_photo(data: bytes, side: str = "unknown", *, max_pixels: int) -> list[QueryCoin]:
    """The coin sides in one uploaded photo, cropped the way ingest crops them.

    A photo of two sides side by side or stacked gives the obverse and the reverse; a tray
    photo, its largest coin. Raises ``ImageLoadError`` for what is not a picture.
    """
    loaded = load_image(data, max_pixels=max_pixels)
    layout = locate_coins(loaded.rgb)
    sides = coin_sides(layout, side)
    picture = None
    if layout.kind == "pair":  # verified as a whole photo too (``verify.CoinViews``)
        picture = keypoint_photo(loaded.rgb)
    return [
        QueryCoin(
            encode_jpeg(crop_coin(loaded.rgb, box)),
            coin_side,
            box.round,
            layout.kind == "crop",
            picture,
        )
        for coin_side, box in sides
    ]


class Identifier:
    """Suggestions from the home's newest model; safe to share between threads."""

    def __init__(self, home: Home, *, device: str = "cpu") -> None:
        self.home = home
        self.device = device
        self._lock = threading.RLock()
        self._model: CurrentModel | None = None
        self._matcher: Matcher | None = None

    @property
    def model(self) -> CurrentModel:
        return self.ready()[0]

    def _newest_version_id(self) -> int | None:
        with self.home.catalog.reader() as session:
            return session.scalar(
                select(ModelVersion.id)
                .where(ModelVersion.artefacts.is_not(None))
                .order_by(ModelVersion.id.desc())
                .limit(1)
            )

    def ready(
        self,
        *,
        on_start: Callable[[int], None] | None = None,
        on_batch: Callable[[int], None] | None = None,
        embed_for: Callable[[CurrentModel], EmbedCrops] | None = None,
    ) -> tuple[CurrentModel, Matcher]:
        """Load (or reload, after a training) the model and bring its index in step;
        ``embed_for(model)`` gives the engine that embeds missing references (default: here)."""
        from coinlens.identify.training import calibrate_pretrained

        with self._lock:
            newest = self._newest_version_id()
            loaded = self._model
            stale = loaded is None or (newest is not None and loaded.version.id != newest)
            if stale or self._matcher is None:
                model = current_model(self.home, device=self.device)
                embed = embed_for(model) if embed_for else None
                index = sync_index(
                    self.home, model, on_start=on_start, on_batch=on_batch, embed=embed
                )
                if len(index) == 0:
                    raise NoReferences(
                        "no catalogued coins to compare with: ingest a labelled collection first"
                    )
                pretrained = model.version.artefacts is None
                if pretrained and not (model.version.metrics or {}).get("calibration"):
                    model.calibration = calibrate_pretrained(self.home, model, index)
                self._model = model
                self._matcher = Matcher(
                    index, model.calibration, verifier=store_verifier(self.home)
                )
            return self._model, self._matcher

    @property
    def index(self) -> ReferenceIndex:
        return self.ready()[1].index

    def add_specimens(self, specimen_ids: Sequence[int]) -> int:
        """Make these specimens' images references now (or drop them, if no longer catalogued).

        Returns how many images joined. The saved index catches up at the next ``sync_index``
        (the next ``coinlens identify``, or a restart).
        """
        try:
            self.ready()
        except NoReferences:
            return 0
        with self.home.catalog.reader() as session:
            rows = images_of(session, specimen_ids)
            refs = crop_refs(rows)
            catalogued = {
                s.id for _, s in rows if s.status == "catalogued" and s.type_id is not None
            }
        with self._lock:
            model, matcher = self._model, self._matcher
            matcher.index.remove([r.image_id for r in refs if r.image_id in matcher.index])
            joining = with_collections(self.home, [r for r in refs if r.specimen_id in catalogued])
            if joining:
                add_refs(matcher.index, joining, embed_refs(self.home, model.embedder, joining))
        return len(joining)

    def suggest(self, coins: Sequence[QueryCoin], *, top_k: int = 5) -> dict[str, Any]:
        """Ranked types for one specimen shown by ``coins`` (one or both sides), nothing stored."""
        model, matcher = self.ready()
        arrays = np.stack(
            [
                crop_to_array(PILImage.open(io.BytesIO(c.crop_jpeg)), model.embedder.input_size)
                for c in coins
            ]
        )
        with self._lock:
            vectors = model.embedder.embed_arrays(arrays, np.array([c.round for c in coins]))
            ((suggestions, decision, _),) = matcher.match(
                vectors,
                [list(range(len(coins)))],
                top_k=top_k,
                query_crop=lambda row: decode_views(coins[row].crop_jpeg, coins[row].picture_jpeg),
                query_cues=crop_cues(arrays, [c.framed for c in coins]),
            )
        return self.describe(suggestions, decision)

    def describe(self, suggestions: Sequence[Suggestion], decision: str) -> dict[str, Any]:
        """JSON-ready suggestions with type references and the evidence images' keys."""
        references = type_references(self.home, [s.type_id for s in suggestions])
        evidence_ids = {i for s in suggestions for i in s.evidence}
        with self.home.catalog.reader() as session:
            images = {
                image.id: image
                for image in session.scalars(select(Image).where(Image.id.in_(evidence_ids)))
            }
            records = type_records(session, [s.type_id for s in suggestions])
        return {
            "model_version": self.model.version.id,
            "decision": decision,
            "decision_reason": explain(suggestions, self.model.calibration)[1],
            "partial_attribution": levels_of(((s.type_id, s.score) for s in suggestions), records),
            "suggestions": [
                {
                    "rank": number,
                    "type_id": s.type_id,
                    "type": references.get(s.type_id),
                    "score": round(s.score, 6),
                    "similarity": round(s.similarity, 6),
                    "evidence": [
                        {
                            "image_id": i,
                            "key": images[i].key,
                            "specimen_id": images[i].specimen_id,
                        }
                        for i in s.evidence
                        if i in images
                    ],
                }
                for number, s in enumerate(suggestions, start=1)
            ],
        }
