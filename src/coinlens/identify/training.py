"""``coinlens train``: fine-tune on the catalogue, calibrate on held-out coins, save a version.

Held-out coins (about 15% of the specimens of every type with at least three) are never trained
on; they calibrate confidence and give honest validation numbers. Types with one or two specimens
keep them all for training. Afterwards every catalogued image, held-out ones included, becomes a
reference in the new version's index.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from sqlalchemy import select

from coinlens.catalog import Home, ModelVersion, Specimen, split_notes
from coinlens.identify.engine import (
    CropRef,
    CurrentModel,
    EmbedCrops,
    Matcher,
    add_refs,
    catalogued_crops,
    current_model,
    embed_refs,
    load_crops,
    ref_views,
    store_verifier,
)
from coinlens.identify.scoring import (
    TYPE_DEPTHS,
    Calibration,
    coin_log_losses,
    fit_calibration,
    fit_similarity_weight,
    fit_temperature,
)
from coinlens.identify.shift import coin_signals, profile
from coinlens.identify.verify import KeypointVerifier
from coinlens.index import ReferenceIndex
from coinlens.model.embedder import Embedder
from coinlens.model.train import TrainConfig, train_embedding
from coinlens.model.transforms import relit
from coinlens.storage import ObjectStore
from coinlens.vision.cues import CUE_NAMES, SIZE_FEATURE, crop_cues, cue_features


class TrainingError(RuntimeError):
    """The catalogue cannot train a model (too few types or coins)."""


@dataclass
class TrainProgress:
    """Callbacks for the CLI's progress bars (all optional)."""

    on_stage: Callable[[str, int], None] | None = None  # stage name, total units
    on_advance: Callable[[int, str], None] | None = None  # units done, note


def split_heldout(
    refs: Sequence[CropRef], fraction: float = 0.15, seed: int = 0
) -> tuple[list[CropRef], list[CropRef]]:
    """(train, held-out) by specimen, stratified by type; rare types stay in training."""
    by_type: dict[int, list[int]] = defaultdict(list)
    for specimen_id, type_id in sorted({(r.specimen_id, r.type_id) for r in refs}):
        by_type[type_id].append(specimen_id)
    rng = np.random.default_rng(seed)
    heldout_specimens: set[int] = set()
    for specimens in by_type.values():
        if len(specimens) >= 3:
            count = max(1, round(len(specimens) * fraction))
            heldout_specimens.update(rng.choice(specimens, count, replace=False).tolist())
    train = [r for r in refs if r.specimen_id not in heldout_specimens]
    heldout = [r for r in refs if r.specimen_id in heldout_specimens]
    return train, heldout


def group_by_specimen(refs: Sequence[CropRef]) -> tuple[list[int], list[list[int]]]:
    """Specimen ids and, for each, the row numbers of its images in ``refs``."""
    groups: dict[int, list[int]] = defaultdict(list)
    for row, ref in enumerate(refs):
        groups[ref.specimen_id].append(row)
    specimen_ids = list(groups)
    return specimen_ids, [groups[s] for s in specimen_ids]


def build_index(refs: Sequence[CropRef], embedded: tuple[np.ndarray, np.ndarray]) -> ReferenceIndex:
    index = ReferenceIndex(embedded[0].shape[1])
    add_refs(index, refs, embedded)
    return index


def _cues_of(index: ReferenceIndex, refs: Sequence[CropRef]) -> np.ndarray | None:
    """The cues the index holds for ``refs`` (None if it holds none)."""
    if not all(r.image_id in index.cues_of for r in refs):
        return None
    return np.stack([index.cues_of[r.image_id] for r in refs])


SIZE_WEIGHTS = (0.0, 0.003, 0.01, 0.02)
COLOUR_WEIGHTS = (0.0, 0.001, 0.003, 0.01)
TWO_TONE_WEIGHTS = (0.0, 0.003, 0.01, 0.03)
LIGHTING_DRAWS = 6  # lightings the held-out coins' colour is measured under for the colour fit


@dataclass(frozen=True)
class Relit:
    """Coins photographed again under one other lighting: their cues and, where an embedder
    was given, their embeddings."""

    cues: np.ndarray
    vectors: np.ndarray | None = None


def relit_coins(
    store: ObjectStore,
    refs: Sequence[CropRef],
    size: int,
    embedder: Embedder | None = None,
    draws: int = LIGHTING_DRAWS,
) -> list[Relit]:
    """``refs``' stored crops (decoded at ``size``, as for embedding) under each of ``draws``
    other lightings (``coinlens.model.transforms.relit``: one lighting for all the crops of a
    draw), measured (cues) and, with ``embedder``, embedded; a few hundred crops at a time."""
    cues: list[list[np.ndarray]] = [[] for _ in range(draws)]
    vectors: list[list[np.ndarray]] = [[] for _ in range(draws)]
    for start in range(0, len(refs), 256):
        chunk = refs[start : start + 256]
        crops = load_crops(store, chunk, size)
        framed = [r.framed for r in chunk]
        for draw in range(draws):
            lit = relit(crops, seed=draw)
            cues[draw].append(crop_cues(lit, framed))
            if embedder is not None:
                vectors[draw].append(embedder.embed_arrays(lit, np.array([r.round for r in chunk])))
    if not refs:
        return [Relit(np.zeros((0, len(CUE_NAMES)), np.float32)) for _ in range(draws)]
    return [
        Relit(np.concatenate(c), np.concatenate(v) if embedder is not None else None)
        for c, v in zip(cues, vectors, strict=True)
    ]


def fit_scoring(
    index: ReferenceIndex,
    vectors: np.ndarray,
    groups: list[list[int]],
    truths: list[int],
    query_cues: np.ndarray,
    exclude: list[tuple[set[int], set[str]]] | None = None,
    relit_query_cues: Sequence[np.ndarray] = (),
) -> Calibration:
    """How many nearest references a type's score averages, and the physical-cue weights,
    under which held-out coins' true types are most probable (lowest negative log-likelihood at
    the best temperature; the smaller on a tie). Depth first, then size, then colour given the
    others, then the two-tone gap: fifteen trials, not a hundred and ninety-two.

    The colour weight is judged on ``relit_query_cues`` where given, the coins' colour measured
    under other lightings (``relit_coins``), by the mean loss over them: held-out coins share the
    references' light, and a weight fitted there trusts colour that the next tray's warmer lamp
    moves (the kaa test trays: top-1 0.890 with the weight so fitted, 0.912 without colour).
    The two-tone gap, a colour measure too, is judged the same way."""
    matcher = Matcher(index, Calibration())

    def loss(trial: Calibration, cue_sets: Sequence[np.ndarray] = (query_cues,)) -> tuple:
        nll = 0.0
        for cues in cue_sets:
            results = matcher.match(
                vectors, groups, exclude=exclude, query_cues=cues, calibration=trial
            )
            nll += fit_temperature([result[2] for result in results], truths)[1]
        nll = round(nll / len(cue_sets), 4)
        weights = trial.size_weight + trial.colour_weight + trial.two_tone_weight
        return nll, trial.type_depth, weights

    depth = min(TYPE_DEPTHS, key=lambda d: loss(Calibration(type_depth=d)))
    sized = np.isfinite(cue_features(query_cues)[:, SIZE_FEATURE]).any()
    size_weight = min(
        SIZE_WEIGHTS if sized else (0.0,),
        key=lambda w: loss(Calibration(type_depth=depth, size_weight=w)),
    )
    colour_weight = min(
        COLOUR_WEIGHTS,
        key=lambda w: loss(
            Calibration(type_depth=depth, size_weight=size_weight, colour_weight=w),
            relit_query_cues or (query_cues,),
        ),
    )
    fitted = Calibration(type_depth=depth, size_weight=size_weight, colour_weight=colour_weight)
    fitted.two_tone_weight = min(
        TWO_TONE_WEIGHTS,
        key=lambda w: loss(replace(fitted, two_tone_weight=w), relit_query_cues or (query_cues,)),
    )
    return fitted


def clearly_better(tried: list, plain: list, truths: list[int]) -> bool:
    """Whether ``tried`` (match results, e.g. with keypoint verification) makes the true types
    more probable than ``plain`` by more than chance: the mean drop in each coin's log-loss
    (each at its best temperature) above two standard errors. Verification costs several
    times the embedding's time per coin; a gain the held-out coins cannot tell from noise does
    not pay for it (kaa: 0.190 -> 0.189 nats, 76 of 195 coins verified), nor does one that too
    few held-out coins show (the end-to-end test's ten-step model: top-1 0.30 verified, 0.40
    not)."""
    if len(truths) < 2:
        return False
    losses = []
    for results in (tried, plain):
        scores = [result[2] for result in results]
        temperature, _ = fit_temperature(scores, truths)
        losses.append(coin_log_losses(scores, truths, temperature))
    gains = losses[1] - losses[0]
    return bool(gains.mean() > 2 * gains.std(ddof=1) / np.sqrt(len(gains)))


def shift_profile(
    results: list, groups: Sequence[Sequence[int]], cues: np.ndarray | None
) -> dict[str, list]:
    """The signals of coins matched as ``results`` (one per group of rows of ``cues``): the
    profile a batch's photography is compared with (``coinlens.identify.shift``)."""
    return profile(
        [
            coin_signals(
                [s.similarity for s in result[0]], cues[list(rows)] if cues is not None else None
            )
            for result, rows in zip(results, groups, strict=True)
        ]
    )


def _top_similarities(results: list) -> list[float]:
    """The plain similarity of each match result's best type (0 where there is none)."""
    return [result[0][0].similarity if result[0] else 0.0 for result in results]


def match_as_new(
    matcher: Matcher,
    vectors: np.ndarray,
    groups: Sequence[Sequence[int]],
    truths: Sequence[int],
    *,
    exclude: Sequence[tuple[set[int], set[str]]] | None = None,
    query_cues: np.ndarray | None = None,
) -> list:
    """Match each coin as if the catalogue lacked its type (its type's references passed over):
    how coins of a missing type fare, which ``fit_type_floors`` guards against. One search per
    type, of that type's coins only. Results in the order of ``groups``."""
    results: list = [None] * len(groups)
    for type_id in sorted(set(truths)):
        mine = [g for g, truth in enumerate(truths) if truth == type_id]
        rows = [row for g in mine for row in groups[g]]
        local, start = [], 0
        for g in mine:
            local.append(list(range(start, start + len(groups[g]))))
            start += len(groups[g])
        found = matcher.match(
            vectors[rows],
            local,
            exclude=[exclude[g] for g in mine] if exclude else None,
            query_cues=query_cues[rows] if query_cues is not None else None,
            without_types={type_id},
        )
        for g, result in zip(mine, found, strict=True):
            results[g] = result
    return results


def lot_mates(home: Home, column: str) -> dict[int, set[int]]:
    """For each catalogued coin with a value in the import column ``column`` (kept in its
    notes: a manifest's ``lot``), the other coins sharing it: coins of one hoard lot may share
    dies and a photographer, which a coin of another lot will not. ``TrainingError`` where no
    coin has one."""
    with home.catalog.reader() as session:
        rows = session.execute(
            select(Specimen.id, Specimen.notes).where(Specimen.status == "catalogued")
        ).all()
    value_of = {}
    for specimen_id, notes in rows:
        value = split_notes(notes)[1].get(column)
        if value not in (None, ""):
            value_of[specimen_id] = str(value)
    if not value_of:
        raise TrainingError(
            f"no catalogued coin has a {column!r} (a manifest column kept at import) to group by"
        )
    members: dict[str, set[int]] = defaultdict(set)
    for specimen_id, value in value_of.items():
        members[value].add(specimen_id)
    return {s: members[value] - {s} for s, value in value_of.items()}


def calibrate(
    index: ReferenceIndex,
    queries: Sequence[CropRef],
    vectors: np.ndarray,
    *,
    query_cues: np.ndarray | None = None,
    target_precision: float,
    new_type_share: float = 0.0,
    leave_one_out: bool = False,
    verifier: KeypointVerifier | None = None,
    store: ObjectStore | None = None,
    relit_queries: Sequence[Relit] = (),
    lot_mates: Mapping[int, set[int]] | None = None,
) -> tuple[Calibration, dict[str, float]]:
    """Fit calibration on ``queries`` (held-out coins, or with ``leave_one_out`` the references
    themselves, each without its own specimen and exact copies). Returns it with top-1/top-5.
    ``lot_mates[s]``: specimens never to serve as coin ``s``'s references (those of its hoard
    lot, ``lot_mates``), so that the confidence holds for coins of lots the catalogue lacks.
    ``relit_queries``: the queries under other lightings (``relit_coins``), for the colour
    weight (their cues) and the similarity's weight in certainty (their embeddings, if any).
    The queries are matched once more as if their types were missing (``match_as_new``), for
    the per-type auto-accept floors at ``new_type_share``."""
    specimen_ids, groups = group_by_specimen(queries)
    truths = [queries[rows[0]].type_id for rows in groups]
    exclude = None
    mates = lot_mates or {}
    if leave_one_out or mates:
        exclude = [
            (
                ({s} if leave_one_out else set()) | mates.get(s, set()),
                {queries[r].sha256 for r in rows} if leave_one_out else set(),
            )
            for s, rows in zip(specimen_ids, groups, strict=True)
        ]
    if mates and exclude:  # a coin whose type only its lot-mates show has nothing to be found by
        specimens_of_type: dict[int, set[int]] = defaultdict(set)
        for image_id, type_id in index.type_of.items():
            specimens_of_type[type_id].add(index.specimen_of[image_id])
        kept = [
            g
            for g, truth in enumerate(truths)
            if specimens_of_type.get(truth, set()) - exclude[g][0]
        ]
        if kept:  # (none: nothing to calibrate on but the coins as they are)
            groups = [groups[g] for g in kept]
            truths = [truths[g] for g in kept]
            exclude = [exclude[g] for g in kept]
    weights = Calibration()
    if query_cues is not None and truths:
        relit_cues = [lit.cues for lit in relit_queries]
        weights = fit_scoring(index, vectors, groups, truths, query_cues, exclude, relit_cues)
    query_crop = (lambda row: ref_views(store, queries[row])) if store else None

    def match(trial: Calibration) -> list:
        return Matcher(index, trial, verifier=verifier).match(
            vectors, groups, top_k=5, exclude=exclude, query_crop=query_crop, query_cues=query_cues
        )

    results = match(weights)
    if verifier is not None and query_crop is not None:
        unverified = replace(weights, verify_weight=0.0)
        plain = match(unverified)
        if not clearly_better(results, plain, truths):
            weights, results = unverified, plain
    result_sets = [([result[2] for result in results], _top_similarities(results))]
    if truths:
        for lit in relit_queries:
            if lit.vectors is not None:
                lit_results = Matcher(index, weights).match(
                    lit.vectors, groups, exclude=exclude, query_cues=lit.cues
                )
                result_sets.append(([r[2] for r in lit_results], _top_similarities(lit_results)))
    # Everything from here is fitted on the coins as photographed and re-lit: the next tray's
    # lamp is what the confidence, threshold and novelty floor must hold under (kaa test: 87.0%
    # of coins auto-accepted at precision 0.975 instead of 86.4% at 0.971, 89 instead of 210
    # flagged as possible new types; studio references: precision 0.968 instead of 0.908).
    pooled_scores = [s for set_scores, _ in result_sets for s in set_scores]
    pooled_truths = truths * len(result_sets)
    if truths:
        temperature, _ = fit_temperature(pooled_scores, pooled_truths)
        weight = fit_similarity_weight(result_sets, truths, temperature)
        weights = replace(weights, similarity_weight=weight)
    # without keypoint verification: nearly every coin so matched is uncertain and would be
    # verified, at several times the embedding's time per coin
    as_new = match_as_new(
        Matcher(index, replace(weights, verify_weight=0.0)),
        vectors,
        groups,
        truths,
        exclude=exclude,
        query_cues=query_cues,
    )
    calibration = fit_calibration(
        pooled_scores,
        pooled_truths,
        target_precision,
        top_similarities=[s for _, similarities in result_sets for s in similarities],
        base=weights,
        as_new_scores=[result[2] for result in as_new],
        as_new_similarities=_top_similarities(as_new),
        new_type_share=new_type_share,
    )
    calibration.shift_profile = shift_profile(results, groups, query_cues)
    ranked = [[s.type_id for s in result[0][:5]] for result in results]
    top1 = np.mean([r[:1] == [t] for r, t in zip(ranked, truths, strict=True)]) if truths else 0.0
    top5 = np.mean([t in r for r, t in zip(ranked, truths, strict=True)]) if truths else 0.0
    calibration.n_heldout = len(truths)
    calibration.heldout_top1 = float(top1) if truths else None
    return calibration, {"top1": float(top1), "top5": float(top5)}


def calibrate_pretrained(
    home: Home,
    model: CurrentModel,
    index: ReferenceIndex,
    sample: int = 3000,
) -> Calibration:
    """Calibration for the untrained backbone: leave-one-out over (a sample of) the catalogue,
    for the home's ``auto_accept_precision`` and ``new_type_share``."""
    refs = [r for r in catalogued_crops(home) if r.image_id in index]
    if len(refs) > sample:
        rng = np.random.default_rng(0)
        refs = [refs[i] for i in sorted(rng.choice(len(refs), sample, replace=False))]
    if not refs:
        return model.calibration
    vectors = index.vectors([r.image_id for r in refs])
    cues = _cues_of(index, refs)
    calibration, scores = calibrate(
        index,
        refs,
        vectors,
        query_cues=cues,
        target_precision=home.settings.auto_accept_precision,
        new_type_share=home.settings.new_type_share,
        leave_one_out=True,
        verifier=store_verifier(home),
        store=home.store,
        # the colour fit needs them only where the index holds the coins' cues
        relit_queries=(
            relit_coins(home.store, refs, model.embedder.input_size) if cues is not None else ()
        ),
    )
    with home.catalog.session() as session:
        version = session.get(ModelVersion, model.version.id)
        version.metrics = {
            **(version.metrics or {}),
            "calibration": calibration.as_dict(),
            "validation": {**scores, "method": "leave-one-out"},
        }
    model.calibration = calibration
    return calibration


ORIENTATION_COINS = 200  # coins the orientation of the catalogue's photos is measured on
UPRIGHT_HINT = 0.6  # share from which ``coinlens train`` suggests ``--upright``


def upright_share(
    crops: np.ndarray, labels: np.ndarray, specimens: np.ndarray, limit: int = ORIENTATION_COINS
) -> dict[str, Any]:
    """How upright the catalogue's photos are: the share of coins (at most ``limit``, drawn at
    random) that match the nearest other coin of their type best as photographed rather than
    turned by 90, 180 or 270 degrees, by the untrained backbone read at one orientation. A
    quarter is chance (coins at any angle: trays); museum photos of coins with legends score
    higher (``TrainConfig.upright``; figures in docs/experiments/ancient.md)."""
    rng = np.random.default_rng(0)
    rows = np.arange(len(crops))
    if len(rows) > limit:
        rows = np.sort(rng.choice(rows, limit, replace=False))
    embedder = Embedder.pretrained(input_size=crops.shape[1])
    embedder.rotation_count = 1
    embedder.use_onnx()
    upright = embedder.embed_arrays(crops)
    turned = [upright[rows]] + [
        embedder.embed_arrays(np.ascontiguousarray(np.rot90(crops[rows], k=k, axes=(1, 2))))
        for k in (1, 2, 3)
    ]
    wins = []
    for i, row in enumerate(rows):
        others = (labels == labels[row]) & (specimens != specimens[row])
        if others.any():
            best = [float((turned[k][i] @ upright[others].T).max()) for k in range(4)]
            wins.append(int(np.argmax(best)) == 0)
    share = round(float(np.mean(wins)), 4) if wins else None
    return {"upright_share": share, "coins": len(wins)}


def train_model(
    home: Home,
    config: TrainConfig,
    *,
    heldout_fraction: float = 0.15,
    progress: TrainProgress | None = None,
    embed_for: Callable[[Embedder], EmbedCrops] | None = None,
    group_by: str | None = None,
) -> ModelVersion:
    """Train, calibrate and save a new model version with its reference index. Auto-accept is
    fitted for the home's ``auto_accept_precision`` and ``new_type_share`` (its settings).
    ``group_by``: an import column (``lot``) whose coins never serve as each other's references
    in calibration (``lot_mates``).

    ``embed_for(embedder)`` gives the engine that embeds the references with the new model
    (default: this process; the Ray engine spreads it over a cluster)."""
    target_precision = home.settings.auto_accept_precision
    progress = progress or TrainProgress()
    refs = catalogued_crops(home)
    types = sorted({r.type_id for r in refs})
    if len(types) < 2:
        raise TrainingError(
            f"training needs catalogued coins of at least two types; the catalogue has "
            f"{len(types)} type(s) with {len(refs)} image(s)"
        )
    mates = lot_mates(home, group_by) if group_by else None
    train, heldout = split_heldout(refs, heldout_fraction)
    label_of = {type_id: i for i, type_id in enumerate(types)}

    if progress.on_stage:
        progress.on_stage("load crops", len(train))
    crops = load_crops(home.store, train, config.input_size)
    if progress.on_advance:
        progress.on_advance(len(train), "")
    labels = np.array([label_of[r.type_id] for r in train])
    flags = np.array([r.round for r in train])

    total_steps = max(1, -(-len(train) // config.batch_size)) * config.epochs
    if progress.on_stage:
        progress.on_stage("train", total_steps)

    def on_step(step: int, total: int, loss: float) -> None:
        if progress.on_advance:
            progress.on_advance(1, f"loss {loss:.3f}")

    model, stats = train_embedding(crops, labels, flags, config, on_step=on_step)
    orientation = upright_share(crops, labels, np.array([r.specimen_id for r in train]))
    del crops
    embedder = Embedder(
        model.cpu().drop_head(),
        config.input_size,
        rotation_count=config.rotations,
        config={
            "backbone": config.backbone,
            "dim": None,  # the trunk's features (``drop_head``); ``config.dim``: the loss's head
            "input_size": config.input_size,
            "rotations": config.rotations,
        },
    )
    embedder.use_onnx()

    if progress.on_stage:
        progress.on_stage("embed references", len(refs))
    advance = (lambda n: progress.on_advance(n, "")) if progress.on_advance else None
    embed = embed_for(embedder) if embed_for else None
    train_embedded = embed_refs(home, embedder, train, on_batch=advance, embed=embed)
    heldout_embedded = embed_refs(home, embedder, heldout, on_batch=advance, embed=embed)
    train_index = build_index(train, train_embedded)
    if heldout:
        calibration, validation = calibrate(
            train_index,
            heldout,
            heldout_embedded[0],
            query_cues=heldout_embedded[1],
            target_precision=target_precision,
            new_type_share=home.settings.new_type_share,
            verifier=store_verifier(home),
            store=home.store,
            relit_queries=relit_coins(home.store, heldout, config.input_size, embedder),
            lot_mates=mates,
        )
        validation["method"] = "held-out"
    else:  # too few coins to hold any out: leave-one-out over the training coins
        calibration, validation = calibrate(
            train_index,
            train,
            train_embedded[0],
            query_cues=train_embedded[1],
            target_precision=target_precision,
            new_type_share=home.settings.new_type_share,
            leave_one_out=True,
            verifier=store_verifier(home),
            store=home.store,
            relit_queries=relit_coins(home.store, train, config.input_size, embedder),
            lot_mates=mates,
        )
        validation["method"] = "leave-one-out (no held-out coins)"
    validation["n_heldout_images"] = len(heldout)

    with home.catalog.session() as session:
        version = ModelVersion(
            backbone=config.backbone,
            training_snapshot={
                "kind": "trained",
                "images": len(train),
                "heldout_images": len(heldout),
                "types": len(types),
                "type_ids": types,
                "max_image_id": max(r.image_id for r in refs),
                "heldout_specimens": sorted({r.specimen_id for r in heldout}),
                "group_by": group_by,
                "config": vars(config),
            },
            metrics={
                "training": {**stats, "orientation": orientation},
                "validation": validation,
                "calibration": calibration.as_dict(),
            },
            artefacts=None,
        )
        session.add(version)
        session.flush()
        prefix = f"models/{version.id}"
        # The row commits only if the artefacts are stored: no version without its weights.
        version.artefacts = embedder.save(home.store, prefix)
        everything = zip(train_embedded, heldout_embedded, strict=True)
        full = build_index([*train, *heldout], tuple(np.concatenate(pair) for pair in everything))
        full.save(home.store, f"indexes/model-{version.id}/references.npz")
        session.flush()
        version_id = version.id
    with home.catalog.reader() as session:
        return session.scalar(select(ModelVersion).where(ModelVersion.id == version_id))


def recalibrate_model(home: Home, *, heldout_fraction: float = 0.15) -> Calibration:
    """Fit the current trained model's calibration again, on the held-out coins it was trained
    without (the same split ``train_model`` made, grouped as it was), and store it with the
    version: for a
    changed ``auto_accept_precision`` or ``new_type_share``, or a model trained before its
    calibration kept what shift checks and batch recalibration need."""
    model = current_model(home)
    snapshot = model.version.training_snapshot or {}
    if model.version.artefacts is None or snapshot.get("kind") != "trained":
        raise TrainingError("no trained model to calibrate again: run `coinlens train` first")
    refs = [r for r in catalogued_crops(home) if r.image_id <= snapshot.get("max_image_id", 0)]
    trained_types = set(snapshot.get("type_ids") or [])
    refs = [r for r in refs if not trained_types or r.type_id in trained_types]
    if "heldout_specimens" in snapshot:  # the coins it was trained without, as recorded
        kept = set(snapshot["heldout_specimens"])
        train = [r for r in refs if r.specimen_id not in kept]
        heldout = [r for r in refs if r.specimen_id in kept]
    else:  # trained before the split was recorded: the same split, if the coins are the same
        train, heldout = split_heldout(refs, heldout_fraction)
    embedder = model.embedder
    train_embedded = embed_refs(home, embedder, train)
    queries = heldout or train
    queries_embedded = embed_refs(home, embedder, heldout) if heldout else train_embedded
    calibration, validation = calibrate(
        build_index(train, train_embedded),
        queries,
        queries_embedded[0],
        query_cues=queries_embedded[1],
        target_precision=home.settings.auto_accept_precision,
        new_type_share=home.settings.new_type_share,
        leave_one_out=not heldout,
        verifier=store_verifier(home),
        store=home.store,
        relit_queries=relit_coins(home.store, queries, embedder.input_size, embedder),
        lot_mates=lot_mates(home, snapshot["group_by"]) if snapshot.get("group_by") else None,
    )
    with home.catalog.session() as session:
        version = session.get(ModelVersion, model.version.id)
        validation = {**(version.metrics or {}).get("validation", {}), **validation}
        version.metrics = {
            **(version.metrics or {}),
            "calibration": calibration.as_dict(),
            "validation": validation,
        }
    return calibration
