"""The home's current model, its reference index kept in step with the catalogue, and the matcher.

Identification works before any training (the ImageNet backbone alone, model version "pretrained")
and improves with every ``coinlens train``. References are the images of catalogued specimens; an
image catalogued after the index was built (by ingest or by review) joins it on the next call,
without retraining.
"""

from __future__ import annotations

import io
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from PIL import Image as PILImage
from sqlalchemy import select
from sqlalchemy.orm import Session

from coinlens.catalog import CoinType, Home, Image, ModelVersion, Specimen, newest_trained_version
from coinlens.catalog import type_references as catalog_type_references
from coinlens.identify.scoring import (
    TYPE_DEPTHS,
    Calibration,
    CueStats,
    Suggestion,
    combine_images,
    decide,
    image_type_scores,
    rank,
    softmax,
)
from coinlens.identify.verify import CoinViews, KeypointVerifier, decode_crop
from coinlens.index import DEFAULT_SHARD, ReferenceIndex
from coinlens.model.embedder import Embedder
from coinlens.model.network import DEFAULT_BACKBONE
from coinlens.model.transforms import crop_to_array
from coinlens.storage import KeyNotFound, ObjectStore
from coinlens.vision.cues import crop_cues
from coinlens.vision.keypoints import Keypoints

NEIGHBOURS = 100
PRETRAINED_INPUT_SIZE = 128


@dataclass(frozen=True)
class CropRef:
    """A stored coin crop and what the catalogue says about it."""

    image_id: int
    specimen_id: int
    side: str
    crop_key: str
    round: bool
    sha256: str
    type_id: int | None = None
    framed: bool = False  # cut as a fixed window around the coin: its size in the crop is a cue
    collection: str = DEFAULT_SHARD  # the index shard its type belongs to (``index_shard_by``)
    picture_key: str | None = None  # the whole photo, where the crop is one side of a pair photo


def crop_refs(rows: Iterable[tuple[Image, Specimen]]) -> list[CropRef]:
    refs = []
    for image, specimen in rows:
        crop = image.crop or {}
        refs.append(
            CropRef(
                image_id=image.id,
                specimen_id=specimen.id,
                side=image.side,
                crop_key=crop.get("key") or image.key,
                round=bool(crop.get("round", True)),
                sha256=image.sha256,
                type_id=specimen.type_id,
                framed=crop.get("layout") == "crop",
                picture_key=pair_photo_key(image),
            )
        )
    return refs


def pair_photo_key(image: Image) -> str | None:
    """The stored photo an image's crop was cut from, where that photo shows both sides."""
    return image.key if (image.crop or {}).get("layout") == "pair" else None


UNREADABLE = (KeyNotFound, OSError, ValueError, SyntaxError, EOFError)
NO_VIEW = np.zeros((8, 8, 3), np.uint8)  # no keypoints: matches nothing


def stored_views(store: ObjectStore, crop_key: str, picture_key: str | None = None) -> CoinViews:
    """A stored crop's views for keypoint verification, with its pair photo where it has one.
    Verification is an extra: a photo the store no longer holds, or that does not decode,
    leaves the crop alone verified, and a crop gone the same way matches no keypoints (its
    embedding still counts), so that one damaged reference cannot stop a batch."""

    def view(key: str) -> np.ndarray | None:
        try:
            return decode_crop(store.get(key))
        except UNREADABLE:
            return None

    crop = view(crop_key)
    return CoinViews(NO_VIEW if crop is None else crop, view(picture_key) if picture_key else None)


def ref_views(store: ObjectStore, ref: CropRef) -> CoinViews:
    """``stored_views`` of a catalogued or backlog crop."""
    return stored_views(store, ref.crop_key, ref.picture_key)


def series_of(reference: str) -> str:
    """A type reference without its number: "RRC 273/1" -> "RRC", "RPC I 1234" -> "RPC I"."""
    match = re.match(r"^(.*?)[\s,.:-]*\d[^\s]*$", reference.strip())
    return (match.group(1) if match else reference).strip()


def with_collections(home: Home, refs: Sequence[CropRef]) -> list[CropRef]:
    """``refs`` with the collection (index shard) of their type, by ``index_shard_by``."""
    shard_by = home.settings.index_shard_by
    if not shard_by:
        return list(refs)
    type_ids = {r.type_id for r in refs if r.type_id is not None}
    with home.catalog.reader() as session:
        types = session.scalars(select(CoinType).where(CoinType.id.in_(type_ids))).all()
    names = {
        t.id: series_of(t.reference) if shard_by == "series" else getattr(t, shard_by) or ""
        for t in types
    }
    return [replace(r, collection=names.get(r.type_id, DEFAULT_SHARD)) for r in refs]


def images_of(session: Session, specimen_ids: Iterable[int]) -> list[tuple[Image, Specimen]]:
    """(image, specimen) of every image of these specimens, in image order (``crop_refs``)."""
    return list(
        session.execute(
            select(Image, Specimen)
            .join(Specimen, Image.specimen_id == Specimen.id)
            .where(Specimen.id.in_(list(specimen_ids)))
            .order_by(Image.id)
        ).all()
    )


def catalogued_crops(home: Home) -> list[CropRef]:
    """Every image of a catalogued specimen with a type: the references."""
    with home.catalog.reader() as session:
        rows = session.execute(
            select(Image, Specimen)
            .join(Specimen, Image.specimen_id == Specimen.id)
            .where(Specimen.status == "catalogued", Specimen.type_id.is_not(None))
            .order_by(Image.id)
        ).all()
        refs = crop_refs(rows)
    return with_collections(home, refs)


def load_crops(store: ObjectStore, refs: Sequence[CropRef], size: int) -> np.ndarray:
    """Decode stored crops into an (N, size, size, 3) uint8 batch."""
    arrays = [
        crop_to_array(PILImage.open(io.BytesIO(store.get(ref.crop_key))), size) for ref in refs
    ]
    return np.stack(arrays) if arrays else np.zeros((0, size, size, 3), np.uint8)


def embed_loaded(
    embedder: Embedder, arrays: np.ndarray, refs: Sequence[CropRef]
) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings and physical cues of decoded crops (``load_crops``)."""
    vectors = embedder.embed_arrays(arrays, np.array([r.round for r in refs]))
    return vectors, crop_cues(arrays, [r.framed for r in refs])


EmbedCrops = Callable[[Sequence[CropRef]], tuple[np.ndarray, np.ndarray]]
"""Stored crops -> (vectors, cues): the local model by default, or the Ray engine's actors."""


def embed_refs(
    home: Home,
    embedder: Embedder,
    refs: Sequence[CropRef],
    *,
    on_batch: Callable[[int], None] | None = None,
    batch: int = 128,
    embed: EmbedCrops | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings and cues of stored crops, a batch at a time (bounded memory); ``embed``
    replaces this process's model (the Ray engine), in larger batches."""

    def here(chunk: Sequence[CropRef]) -> tuple[np.ndarray, np.ndarray]:
        return embed_loaded(embedder, load_crops(home.store, chunk, embedder.input_size), chunk)

    run, step = (here, batch) if embed is None else (embed, max(batch, 1024))
    vectors, cues = [], []
    for start in range(0, len(refs), step):
        chunk = refs[start : start + step]
        embedded = run(chunk)
        vectors.append(embedded[0])
        cues.append(embedded[1])
        if on_batch:
            on_batch(len(chunk))
    if not vectors:
        return np.zeros((0, embedder.dim), np.float32), crop_cues(np.zeros((0, 1, 1, 3)), [])
    return np.concatenate(vectors), np.concatenate(cues)


def add_refs(
    index: ReferenceIndex, refs: Sequence[CropRef], embedded: tuple[np.ndarray, np.ndarray | None]
) -> None:
    """Add catalogued crops (with their type, specimen, hash and cues) to ``index``."""
    vectors, cues = embedded
    index.add(
        np.array([r.image_id for r in refs]),
        vectors,
        np.array([r.type_id for r in refs]),
        np.array([r.specimen_id for r in refs]),
        [r.sha256 for r in refs],
        cues,
        [r.collection for r in refs],
    )


@dataclass
class CurrentModel:
    version: ModelVersion
    embedder: Embedder
    calibration: Calibration
    # the catalogue's type references by id: what the calibration's per-type floors name, for
    # matching against references numbered otherwise (``coinlens eval``'s labelled folders)
    type_references: dict[int, str] = field(default_factory=dict)

    @property
    def index_key(self) -> str:
        return f"indexes/model-{self.version.id}/references.npz"


def pretrained_version(home: Home, backbone: str = DEFAULT_BACKBONE) -> ModelVersion:
    """The model version of the untrained backbone, created the first time it is needed."""
    with home.catalog.session() as session:
        version = session.scalar(
            select(ModelVersion)
            .where(ModelVersion.backbone == backbone)
            .where(ModelVersion.artefacts.is_(None))
            .order_by(ModelVersion.id.desc())
        )
        if version is None:
            version = ModelVersion(
                backbone=backbone,
                training_snapshot={"kind": "pretrained", "input_size": PRETRAINED_INPUT_SIZE},
                metrics={},
            )
            session.add(version)
            session.flush()
        return version


def current_model(home: Home, *, device: str = "cpu", onnx: bool = True) -> CurrentModel:
    """The newest trained model, or the pretrained backbone when nothing was trained yet."""
    with home.catalog.reader() as session:
        version = newest_trained_version(session)
        references = catalog_type_references(session)
    if version is not None:
        embedder = Embedder.load(home.store, version.artefacts, device=device)
    else:
        version = pretrained_version(home)
        embedder = Embedder.pretrained(version.backbone, PRETRAINED_INPUT_SIZE, device=device)
    if onnx:
        embedder.use_onnx()
    calibration = Calibration.from_dict((version.metrics or {}).get("calibration"))
    return CurrentModel(version, embedder, calibration, references)


def sync_index(
    home: Home,
    model: CurrentModel,
    *,
    on_start: Callable[[int], None] | None = None,
    on_batch: Callable[[int], None] | None = None,
    embed: EmbedCrops | None = None,
) -> ReferenceIndex:
    """Load the model's reference index and bring it in step with the catalogue (then save);
    ``embed`` embeds the missing references elsewhere (the Ray engine)."""
    index = ReferenceIndex.load(
        home.store,
        model.index_key,
        model.embedder.dim,
        approximate_above=home.settings.index_exact_limit,
    )
    refs = catalogued_crops(home)
    wanted = {ref.image_id: ref for ref in refs}
    stale = [image_id for image_id in index.ids if image_id not in wanted]
    index.remove(stale)
    # Re-typed by a curator, or in another collection now: the same crop, so the same vector.
    refiled = [
        wanted[i]
        for i in index.ids
        if (wanted[i].type_id, wanted[i].collection) != (index.type_of[i], index.shard_of[i])
    ]
    if refiled:
        ids = [r.image_id for r in refiled]
        cues = [index.cues_of.get(i) for i in ids]
        vectors = index.vectors(ids)
        add_refs(index, refiled, (vectors, None))
        known = [(i, c) for i, c in zip(ids, cues, strict=True) if c is not None]
        if known:
            index.set_cues([i for i, _ in known], np.stack([c for _, c in known]))
    missing = [ref for ref in refs if ref.image_id not in index]
    if on_start:
        on_start(len(missing))
    if missing:
        embedded = embed_refs(home, model.embedder, missing, on_batch=on_batch, embed=embed)
        add_refs(index, missing, embedded)
    uncued = [ref for ref in refs if ref.image_id not in index.cues_of]  # saved before cues
    for start in range(0, len(uncued), 256):
        chunk = uncued[start : start + 256]
        arrays = load_crops(home.store, chunk, model.embedder.input_size)
        index.set_cues([r.image_id for r in chunk], crop_cues(arrays, [r.framed for r in chunk]))
    if missing or stale or refiled or uncued:
        index.save(home.store, model.index_key)
    return index


@dataclass
class ReferenceTallies:
    """How many references each type has, and the images of each specimen and content hash."""

    per_type: Counter[int]
    rare: dict[int, int]  # types with fewer references than the deepest type score averages
    by_specimen: dict[int, list[int]]
    by_sha: dict[str, list[int]]
    by_type: dict[int, list[int]]

    @classmethod
    def of(cls, index: ReferenceIndex) -> ReferenceTallies:
        per_type = Counter(index.type_of.values())
        by_specimen: dict[int, list[int]] = defaultdict(list)
        by_sha: dict[str, list[int]] = defaultdict(list)
        by_type: dict[int, list[int]] = defaultdict(list)
        for image_id, specimen_id in index.specimen_of.items():
            by_specimen[specimen_id].append(image_id)
            by_sha[index.sha_of[image_id]].append(image_id)
            by_type[index.type_of[image_id]].append(image_id)
        rare = {t: n for t, n in per_type.items() if n < max(TYPE_DEPTHS)}
        return cls(per_type, rare, dict(by_specimen), dict(by_sha), dict(by_type))


class Matcher:
    """Neighbours -> per-type scores per image -> combined per specimen -> ranked, decided."""

    def __init__(
        self,
        index: ReferenceIndex,
        calibration: Calibration,
        *,
        neighbours: int = NEIGHBOURS,
        verifier: KeypointVerifier | None = None,
    ) -> None:
        self.index = index
        self.calibration = calibration
        self.neighbours = neighbours
        self.verifier = verifier
        self._cue_stats: tuple[int, CueStats] | None = None
        self._tallies: tuple[int, ReferenceTallies] | None = None

    def cue_stats(self) -> CueStats:
        """Per-type cue statistics of the references, refreshed when the index changes."""
        if self._cue_stats is None or self._cue_stats[0] != self.index.generation:
            stats = CueStats.from_references(*self.index.cue_table())
            self._cue_stats = (self.index.generation, stats)
        return self._cue_stats[1]

    def tallies(self) -> ReferenceTallies:
        """The index's ``ReferenceTallies``, refreshed when it changes."""
        if self._tallies is None or self._tallies[0] != self.index.generation:
            self._tallies = (self.index.generation, ReferenceTallies.of(self.index))
        return self._tallies[1]

    def available(self, excluded: tuple[set[int], set[str]] | None = None) -> dict[int, int]:
        """References per type that may count, for types with fewer than ``max(TYPE_DEPTHS)``
        (``image_type_scores``' ``available``), without those ``excluded`` (specimens, sha256s)."""
        tallies = self.tallies()
        if not excluded:
            return tallies.rare
        gone = {i for s in excluded[0] for i in tallies.by_specimen.get(s, ())}
        gone |= {i for sha in excluded[1] for i in tallies.by_sha.get(sha, ())}
        out = dict(tallies.rare)
        for image_id in gone:
            type_id = self.index.type_of[image_id]
            out[type_id] = out.get(type_id, tallies.per_type[type_id]) - 1
        return out

    def match(
        self,
        vectors: np.ndarray,
        groups: Sequence[Sequence[int]],
        *,
        top_k: int = 5,
        exclude: Sequence[tuple[set[int], set[str]]] | None = None,
        query_crop: Callable[[int], CoinViews | np.ndarray] | None = None,
        query_cues: np.ndarray | None = None,
        calibration: Calibration | None = None,
        without_types: Collection[int] = (),
    ) -> list[tuple[list[Suggestion], str, dict[int, float]]]:
        """For each group of rows of ``vectors`` (the images of one specimen): suggestions, the
        decision, and the type scores. ``exclude[g]`` = (specimen ids, sha256s) never to count
        as neighbours of group g (the specimen itself and exact copies, in leave-one-out);
        references of ``without_types`` count for no group (as if the catalogue lacked them).
        ``query_crop(row)`` gives a row's ``CoinViews`` (or crop) for keypoint verification, when
        a verifier is set; ``query_cues[row]`` its physical cues (``coinlens.vision.cues``),
        weighed as the calibration (default: the matcher's) says."""
        calibration = calibration or self.calibration
        use_cues = query_cues is not None and calibration.weighs_cues
        stats = self.cue_stats() if use_cues else None
        extra = 0
        if exclude:
            extra = max((len(e[0]) + len(e[1])) * 4 for e in exclude) if exclude else 0
        verifier = self.verifier if calibration.verify_weight > 0 else None
        depth = max(self.neighbours, verifier.shortlist if verifier else 0)
        tallies = self.tallies()
        without = [i for t in without_types for i in tallies.by_type.get(t, ())]
        similarities, ids = self.index.search(vectors, depth + extra, without=without)
        results = []
        for g, rows in enumerate(groups):
            per_image = []
            available = self.available(exclude[g] if exclude else None)
            for row in rows:
                sims, neighbour_ids = similarities[row], ids[row]
                if exclude:
                    specimens, shas = exclude[g]
                    keep = np.array(
                        [
                            i >= 0
                            and self.index.specimen_of[int(i)] not in specimens
                            and self.index.sha_of[int(i)] not in shas
                            for i in neighbour_ids
                        ],
                        dtype=bool,
                    )
                    sims, neighbour_ids = sims[keep], neighbour_ids[keep]
                sims, neighbour_ids = sims[:depth], neighbour_ids[:depth]
                scored = image_type_scores(
                    sims[: self.neighbours],
                    neighbour_ids[: self.neighbours],
                    self.index.type_of,
                    depth=calibration.type_depth,
                    available=available,
                )
                if verifier is not None and query_crop is not None and scored[0]:
                    values = np.array(list(scored[0].values()))
                    if softmax(values, calibration.temperature).max() < verifier.confident:
                        sims, neighbour_ids = verifier.rescore(
                            query_crop(row),
                            sims,
                            neighbour_ids,
                            extra=self._voted_for(
                                vectors[row], exclude[g] if exclude else None, set(without_types)
                            ),
                            weight=calibration.verify_weight,
                        )
                        scored = image_type_scores(
                            sims[: self.neighbours],
                            neighbour_ids[: self.neighbours],
                            self.index.type_of,
                            depth=calibration.type_depth,
                            available=available,
                        )
                per_image.append(scored)
            plain, evidence = combine_images(per_image)
            scores = plain
            if stats is not None:
                scores = dict(plain)
                for row in rows:
                    changes = stats.adjustments(query_cues[row], list(scores), calibration)
                    for type_id, change in changes.items():
                        scores[type_id] += change / len(rows)
            suggestions = rank(scores, evidence, calibration, top_k, plain)
            results.append((suggestions, decide(suggestions, calibration), scores))
        return results

    def _voted_for(
        self,
        vector: np.ndarray,
        excluded: tuple[set[int], set[str]] | None,
        without_types: set[int],
    ) -> Callable[[Keypoints, set[int]], list[tuple[int, float]]]:
        """The verifier's descriptor-vote candidates for one query image, with their embedding
        similarities, never the query's own specimen or copies (``excluded``) nor a reference
        of ``without_types``."""

        def candidates(points: Keypoints, shortlisted: set[int]) -> list[tuple[int, float]]:
            def allowed(image_id: int) -> bool:
                if image_id in shortlisted or self.index.type_of[image_id] in without_types:
                    return False
                if excluded is None:
                    return True
                return (
                    self.index.specimen_of[image_id] not in excluded[0]
                    and self.index.sha_of[image_id] not in excluded[1]
                )

            ids = self.verifier.voted(points, self.index, allowed) if self.verifier else []
            if not ids:
                return []
            similarities = self.index.vectors(ids) @ vector
            return list(zip(ids, similarities.tolist(), strict=True))

        return candidates


def store_verifier(home: Home) -> KeypointVerifier:
    """A verifier that reads reference crops (and pair photos) from the home's store by image id."""
    keys: dict[int, tuple[str, str | None]] = {}

    def load(image_id: int) -> CoinViews:
        if image_id not in keys:
            with home.catalog.reader() as session:
                image = session.get(Image, image_id)
                keys[image_id] = ((image.crop or {}).get("key") or image.key, pair_photo_key(image))
        return stored_views(home.store, *keys[image_id])

    return KeypointVerifier(load)


def type_references(home: Home, type_ids: Iterable[int]) -> dict[int, str]:
    with home.catalog.reader() as session:
        return catalog_type_references(session, type_ids)
