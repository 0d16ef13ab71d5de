"""``coinlens identify``: suggestions for every backlog coin of a folder, streamed and resumable.

The photos are ingested first (as backlog; idempotent), so every suggestion belongs to a specimen
in the catalogue. Specimens are then matched in chunks: crops are decoded, embedded, searched and
scored a chunk at a time (bounded memory), and each chunk's suggestions are committed in one
transaction. A re-run skips the specimens that already have suggestions from the current model,
so an interrupted run resumes where it stopped; ``rescore`` matches them again, against the
references as they are now (a new type's first photos, coins catalogued in review: both join the
index without retraining). A coin catalogued since it was photographed is matched without its own
images, never against itself; a backlog coin whose photo is a catalogued coin's own (the same file
ingested again under another accession) goes to review, never to bulk accept, which would
catalogue that coin twice. The ``--out`` file is written from the catalogue at the end,
atomically.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from coinlens.catalog import ATTRIBUTION_LEVELS, Home, Image, Job, Specimen, Suggestion
from coinlens.catalog.models import utcnow
from coinlens.catalog.queries import specimens_by_accession, type_references
from coinlens.identify.batches import (
    batch_calibrations,
    batches_of,
    check_batch,
    current_check,
    hold_reason,
    is_held,
    refit_batch,
)
from coinlens.identify.engine import (
    CropRef,
    CurrentModel,
    Matcher,
    crop_refs,
    embed_loaded,
    images_of,
    load_crops,
    ref_views,
)
from coinlens.identify.partial import levels_of, type_records
from coinlens.identify.scoring import explain
from coinlens.identify.shift import Shift, coin_signals
from coinlens.ingest import IngestItem
from coinlens.storage import atomic_open

CHUNK = 64


@dataclass
class IdentifyProgress:
    on_total: Callable[[int, int], None] | None = None  # (to do, already done)
    on_chunk: Callable[[int, dict[str, int]], None] | None = None  # (done now, decision counts)


def specimens_for_items(home: Home, items: Sequence[IngestItem]) -> list[int]:
    """Ids of the specimens the items became (tray coins included, and the specimen a merged
    one joined), in item order."""
    ids: list[int] = []
    with home.catalog.reader() as session:
        for start in range(0, len(items), 200):
            accessions = [item.accession for item in items[start : start + 200]]
            rows = specimens_by_accession(session, accessions)
            order = {a: i for i, a in enumerate(accessions)}
            rows.sort(key=lambda r: (order.get(r[0].split("#")[0], 0), r[0]))
            ids.extend(specimen_id for _, specimen_id in rows)
    return list(dict.fromkeys(ids))


def _done(home: Home, specimen_ids: Sequence[int], version_id: int) -> set[int]:
    done: set[int] = set()
    with home.catalog.reader() as session:
        for start in range(0, len(specimen_ids), 500):
            chunk = specimen_ids[start : start + 500]
            done.update(
                session.scalars(
                    select(Suggestion.specimen_id)
                    .where(Suggestion.specimen_id.in_(chunk))
                    .where(Suggestion.model_version_id == version_id)
                    .distinct()
                ).all()
            )
    return done


def catalogued_copies(session: Session, refs: Sequence[CropRef]) -> dict[int, str]:
    """For specimens whose coin crop is byte for byte a catalogued coin's of another specimen
    (the same file ingested again under another accession): that coin's accession."""
    shas = {ref.sha256 for ref in refs}
    rows = session.execute(
        select(Image.sha256, Image.key, Image.crop, Specimen.id, Specimen.accession)
        .join(Specimen, Image.specimen_id == Specimen.id)
        .where(Image.sha256.in_(shas), Specimen.status == "catalogued")
    ).all()
    catalogued = {
        (sha, (crop or {}).get("key") or key): (specimen_id, accession)
        for sha, key, crop, specimen_id, accession in rows
    }
    copies: dict[int, str] = {}
    for ref in refs:
        found = catalogued.get((ref.sha256, ref.crop_key))
        if found is not None and found[0] != ref.specimen_id:
            copies.setdefault(ref.specimen_id, found[1])
    return copies


def summarise(specimen: Specimen, suggestions: Sequence[Any], decision: str) -> None:
    """Keep the specimen's brief of its newest suggestions (what the review queue orders by)."""
    top = suggestions[0] if suggestions else None
    second = suggestions[1].score if len(suggestions) > 1 else 0.0
    specimen.suggested_type_id = top.type_id if top else None
    specimen.suggestion_score = round(top.score, 6) if top else 0.0
    specimen.suggestion_margin = round(top.score - second, 6) if top else 0.0
    specimen.decision = decision


def identify_specimens(
    home: Home,
    model: CurrentModel,
    matcher: Matcher,
    specimen_ids: Sequence[int],
    *,
    target: str,
    top_k: int = 5,
    progress: IdentifyProgress | None = None,
    embed: Callable[[Sequence[CropRef]], tuple[np.ndarray, np.ndarray]] | None = None,
    chunk_size: int = CHUNK,
    rescore: bool = False,
) -> dict[str, Any]:
    """Suggest types for ``specimen_ids`` that the current model has not done yet (``rescore``:
    all of them, their earlier suggestions from this model replaced).

    ``embed`` turns stored crops into vectors and cues (default: the model here; the Ray engine
    passes its own), ``chunk_size`` specimens are matched and committed at a time."""
    progress = progress or IdentifyProgress()
    version_id = model.version.id
    done = set() if rescore else _done(home, specimen_ids, version_id)
    todo = [s for s in specimen_ids if s not in done]
    batch_of = batches_of(home, specimen_ids)
    batches = sorted({b for b in batch_of.values() if b})
    # matched again: the coins a person reviewed in each batch refit its calibration first
    refits = [refit_batch(home, b, model, matcher) for b in batches] if rescore else []
    if progress.on_total:
        progress.on_total(len(todo), len(done))
    with home.catalog.session() as session:
        job = Job(
            kind="identify",
            target=target,
            total=len(specimen_ids),
            skipped=len(done),
            params={"model_version": version_id, "top_k": top_k},
        )
        session.add(job)
        session.flush()
        job_id = job.id
    decisions = {"auto_accept": 0, "review": 0, "possible_new_type": 0}
    candidates: Counter[str | None] = Counter()  # auto-accept candidates per batch, this run
    state = "failed"
    try:
        for start in range(0, len(todo), chunk_size):
            chunk = todo[start : start + chunk_size]
            with home.catalog.reader() as session:
                rows = images_of(session, chunk)
                refs = crop_refs(rows)
                catalogued = {s.id for _, s in rows if s.status == "catalogued"}
                copies = catalogued_copies(session, refs)
                chunk_batches = {batch_of.get(s) for s in chunk} - {None}
                calibrations = batch_calibrations(session, chunk_batches, version_id)
                held = {b: is_held(session, b, version_id, home.settings) for b in chunk_batches}
            groups_by_specimen: dict[int, list[int]] = {s: [] for s in chunk}
            for row, ref in enumerate(refs):
                groups_by_specimen[ref.specimen_id].append(row)
            specimens = [s for s in chunk if groups_by_specimen[s]]
            if embed is not None:
                vectors, cues = embed(refs)
            else:
                arrays = load_crops(home.store, refs, model.embedder.input_size)
                vectors, cues = embed_loaded(model.embedder, arrays, refs)
            # A catalogued coin's own images are references: it is matched as if they were not.
            exclude = [({s} if s in catalogued else set(), set()) for s in specimens]
            # each batch's coins with its own calibration, where one was refitted for it
            calibration_of = [calibrations.get(batch_of.get(s)) for s in specimens]
            results: list = [None] * len(specimens)
            for calibration in {id(c): c for c in calibration_of}.values():
                mine = [i for i, c in enumerate(calibration_of) if c is calibration]
                found = matcher.match(
                    vectors,
                    [groups_by_specimen[specimens[i]] for i in mine],
                    top_k=top_k,
                    exclude=[exclude[i] for i in mine] if catalogued else None,
                    query_crop=lambda row, refs=refs: ref_views(home.store, refs[row]),
                    query_cues=cues,
                    calibration=calibration,
                )
                for i, result in zip(mine, found, strict=True):
                    results[i] = result
            with home.catalog.session() as session:
                session.execute(
                    delete(Suggestion)
                    .where(Suggestion.specimen_id.in_(specimens))
                    .where(Suggestion.model_version_id == version_id)
                )
                for number, (specimen_id, (suggestions, decision, _)) in enumerate(
                    zip(specimens, results, strict=True)
                ):
                    calibration = calibration_of[number] or matcher.calibration
                    reason = explain(suggestions, calibration)[1] if suggestions else ""
                    if specimen_id in copies and specimen_id not in catalogued:
                        # never accepted in bulk: that would catalogue one coin twice
                        decision = "review"
                        reason = (
                            f"the same photo as catalogued coin {copies[specimen_id]}: "
                            "a second record of that coin?"
                        )
                    decisions[decision] += 1
                    if decision == "auto_accept":
                        candidates[batch_of.get(specimen_id)] += 1
                    specimen = session.get(Specimen, specimen_id)
                    summarise(specimen, suggestions, decision)
                    if decision == "auto_accept" and held.get(batch_of.get(specimen_id), False):
                        specimen.decision = "review"  # until the batch's check or audit allows it
                    if not suggestions:
                        continue
                    signals = coin_signals(
                        [s.similarity for s in suggestions],
                        cues[groups_by_specimen[specimen_id]],
                    )
                    for rank_number, suggestion in enumerate(suggestions, start=1):
                        evidence = {
                            "images": suggestion.evidence,
                            "similarity": round(suggestion.similarity, 6),
                        }
                        if rank_number == 1:  # why the decision: for the reviewer
                            evidence["reason"] = reason
                            evidence["signals"] = signals  # for the batch's shift check
                        session.add(
                            Suggestion(
                                specimen_id=specimen_id,
                                model_version_id=version_id,
                                rank=rank_number,
                                type_id=suggestion.type_id,
                                score=round(suggestion.score, 6),
                                evidence=evidence,
                                decision=decision,
                            )
                        )
                job = session.get(Job, job_id)
                job.done = min(len(todo), start + len(chunk))
            if progress.on_chunk:
                progress.on_chunk(len(chunk), decisions)
        checks = {b: check_batch(home, b, model) for b in batches}
        held_now = sum(candidates[b] for b, (_, held_batch) in checks.items() if held_batch)
        decisions["auto_accept"] -= held_now  # they wait in review for the batch's audit
        decisions["review"] += held_now
        decisions["held_for_audit"] = held_now
        state = "done"
    except KeyboardInterrupt:
        state = "interrupted"
        raise
    finally:
        with home.catalog.session() as session:
            job = session.get(Job, job_id)
            job.state, job.finished_at = state, utcnow()
            job.message = json.dumps(decisions)
    with home.catalog.reader() as session:
        waiting = {
            b: session.scalar(
                select(func.count())
                .select_from(Specimen)
                .where(Specimen.batch == b, Specimen.decision == "auto_accept")
                .where(Specimen.status == "backlog")
            )
            or 0
            for b in batches
        }
    return {
        "identified": len(todo),
        "already_done": len(done),
        "decisions": decisions,
        "batches": {
            b: {
                "shift": shift.as_dict(),
                "held": is_batch_held,
                "auto_accept_waiting": waiting[b],
            }
            for b, (shift, is_batch_held) in checks.items()
        },
        "recalibrated": {
            r.batch: {"reviewed": r.reviewed, "right": r.right} for r in refits if r.calibration
        },
    }


def suggestion_records(
    home: Home, specimen_ids: Sequence[int], version_id: int
) -> Iterator[dict[str, Any]]:
    """One record per specimen (source, accession, top-k types, evidence keys, decision)."""
    for start in range(0, len(specimen_ids), 500):
        chunk = specimen_ids[start : start + 500]
        with home.catalog.reader() as session:
            specimens = {
                s.id: s
                for s in session.scalars(select(Specimen).where(Specimen.id.in_(chunk))).all()
            }
            suggestions = session.scalars(
                select(Suggestion)
                .where(Suggestion.specimen_id.in_(chunk))
                .where(Suggestion.model_version_id == version_id)
                .order_by(Suggestion.specimen_id, Suggestion.rank)
            ).all()
            type_ids = {s.type_id for s in suggestions}
            evidence_ids = {i for s in suggestions for i in (s.evidence or {}).get("images", [])}
            references = type_references(session, type_ids)
            records = type_records(session, type_ids)
            evidence_keys = dict(
                session.execute(select(Image.id, Image.key).where(Image.id.in_(evidence_ids))).all()
            )
            images = session.execute(
                select(Image.specimen_id, Image.source, Image.side, Image.crop)
                .where(Image.specimen_id.in_(chunk))
                .order_by(Image.id)
            ).all()
            shifts = {
                batch: Shift.from_dict(check.shift if check else None)
                for batch in {s.batch for s in specimens.values() if s.batch}
                for check in [current_check(session, batch, version_id)]
            }
        by_specimen: dict[int, list[Suggestion]] = {}
        for suggestion in suggestions:
            by_specimen.setdefault(suggestion.specimen_id, []).append(suggestion)
        sources: dict[int, list[dict[str, Any]]] = {}
        for specimen_id, source, side, crop in images:
            entry = {"source": source, "side": side}
            if crop and crop.get("layout") == "tray":
                entry["box"] = {k: crop[k] for k in ("x", "y", "w", "h")}
            sources.setdefault(specimen_id, []).append(entry)
        for specimen_id in chunk:
            specimen = specimens.get(specimen_id)
            if specimen is None:
                continue
            ranked = by_specimen.get(specimen_id, [])
            decision = ranked[0].decision if ranked else "possible_new_type"
            reason = (ranked[0].evidence or {}).get("reason") if ranked else None
            if decision == "auto_accept" and specimen.decision == "review":  # held
                decision = "review"
                reason = hold_reason(shifts.get(specimen.batch) or Shift(n=0))
            yield {
                "source": sources.get(specimen_id, [{}])[0].get("source"),
                "images": sources.get(specimen_id, []),
                "accession": specimen.accession,
                "specimen_id": specimen_id,
                "decision": decision,
                "decision_reason": reason,
                "batch": specimen.batch,
                "partial_attribution": levels_of(((s.type_id, s.score) for s in ranked), records),
                "suggestions": [
                    {
                        "rank": s.rank,
                        "type": references.get(s.type_id),
                        "score": s.score,
                        "similarity": (s.evidence or {}).get("similarity"),
                        "evidence": [
                            evidence_keys[i]
                            for i in (s.evidence or {}).get("images", [])
                            if i in evidence_keys
                        ],
                    }
                    for s in ranked
                ],
            }


def write_results(path: Path, records: Iterator[dict[str, Any]], top_k: int) -> int:
    """JSONL (one object per line) or CSV (flat columns), chosen by suffix; write-then-rename."""
    count = 0
    with atomic_open(path, "w", encoding="utf-8", newline="") as handle:
        if path.suffix.lower() == ".csv":
            columns = ["source", "accession", "specimen_id", "decision", "decision_reason"]
            columns.append("images")  # every photo of the coin, "side: source", " | " between
            for k in range(1, top_k + 1):
                columns += [f"type_{k}", f"score_{k}", f"evidence_{k}"]
            for level in ATTRIBUTION_LEVELS:  # the coarser levels the suggestions agree on
                columns += [level, f"{level}_confidence"]
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            for record in records:
                row = {c: record.get(c) for c in columns[:5]}
                row["images"] = " | ".join(
                    f"{image['side']}: {image['source']}" for image in record.get("images", [])
                )
                for s in record["suggestions"][:top_k]:
                    row[f"type_{s['rank']}"] = s["type"]
                    row[f"score_{s['rank']}"] = f"{s['score']:.4f}"
                    row[f"evidence_{s['rank']}"] = " ".join(s["evidence"])
                for level in record.get("partial_attribution", []):
                    row[level["level"]] = level["value"]
                    row[f"{level['level']}_confidence"] = f"{level['confidence']:.4f}"
                writer.writerow(row)
                count += 1
        else:
            for record in records:
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
                count += 1
    return count
