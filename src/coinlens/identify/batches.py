"""A batch's promise: its shift check, the hold on its auto-accept, its own calibration.

After a batch is identified its coins' signals are compared with the calibration coins'
(``coinlens.identify.shift``) and the result kept as a ``BatchCheck``. A shifted batch's
auto-accept candidates (the coins whose top suggestion says ``auto_accept``) wait in review,
their specimens' decision ``review``, until an audit of the batch allows them
(``coinlens.identify.acceptance``; the audit's draws and pages live in ``coinlens.review.audit``).
When the batch is matched again, the coins a person reviewed in it refit its calibration
(``recalibrate_for_batch``) and the batch's coins are matched with it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy import and_, exists, select, update
from sqlalchemy.orm import Session

from coinlens.catalog import BatchCheck, Home, Specimen, Suggestion
from coinlens.catalog.queries import AuditOutcome, audit_outcomes, reviewed_in_batch
from coinlens.config import Settings
from coinlens.identify.acceptance import AuditVerdict, verdict
from coinlens.identify.engine import (
    CurrentModel,
    Matcher,
    crop_refs,
    embed_loaded,
    images_of,
    load_crops,
)
from coinlens.identify.scoring import Calibration, recalibrate_for_batch
from coinlens.identify.shift import Shift, batch_shift


def required_bound(settings: Settings) -> float:
    """The lower bound an audit must reach: the promised precision less the tolerance."""
    return round(settings.auto_accept_precision - settings.audit_tolerance, 6)


def counted_outcomes(session: Session, batch: str) -> list[AuditOutcome]:
    """The audit's reviewed coins that count now (``audit_verdict``): those drawn at random."""
    check = latest_check(session, batch)
    scope = (check.audit_scope if check is not None else None) or {}
    return [
        o
        for o in audit_outcomes(session, batch)
        if o.right is not None and o.purpose == "bound" and scope.get(str(o.specimen_id), True)
    ]


def audit_verdict(session: Session, batch: str, settings: Settings) -> AuditVerdict:
    """What the batch's audit shows so far (``coinlens.identify.acceptance.verdict``). After the
    batch was matched again with its refitted calibration, a coin reviewed by then counts only
    if that calibration would still auto-accept it (``BatchCheck.audit_scope``): the audit
    judges the rule the batch is accepted by now."""
    done = counted_outcomes(session, batch)
    wrong = sum(1 for o in done if not o.right)
    return verdict(len(done), wrong, required_bound(settings))


def current_check(session: Session, batch: str, version_id: int) -> BatchCheck | None:
    return session.scalar(
        select(BatchCheck).where(
            BatchCheck.batch == batch, BatchCheck.model_version_id == version_id
        )
    )


def candidates_query(batch: str, version_id: int):
    """The batch's uncatalogued coins whose top suggestion from this model is auto_accept."""
    top = exists().where(
        and_(
            Suggestion.specimen_id == Specimen.id,
            Suggestion.model_version_id == version_id,
            Suggestion.rank == 1,
            Suggestion.decision == "auto_accept",
        )
    )
    return select(Specimen.id).where(Specimen.batch == batch, Specimen.status != "catalogued", top)


def settle(session: Session, batch: str, version_id: int, held: bool) -> int:
    """Give the batch's auto-accept candidates the decision the batch allows now: ``review``
    while ``held``, ``auto_accept`` otherwise. Returns how many candidates there are."""
    ids = session.scalars(candidates_query(batch, version_id)).all()
    decision = "review" if held else "auto_accept"
    for start in range(0, len(ids), 500):
        session.execute(
            update(Specimen)
            .where(Specimen.id.in_(ids[start : start + 500]))
            .where(Specimen.decision.in_(("auto_accept", "review")))
            .values(decision=decision)
            .execution_options(synchronize_session=False)
        )
    return len(ids)


def candidate_count(session: Session, batch: str, version_id: int) -> int:
    return len(session.scalars(candidates_query(batch, version_id)).all())


def holds(shifted: bool, audit: AuditVerdict) -> bool:
    """Whether auto-accept waits: the batch is shifted, or its audit found a mistake, and the
    audit does not allow it yet."""
    return (shifted or audit.wrong > 0) and not audit.allowed


def is_held(session: Session, batch: str, version_id: int, settings: Settings) -> bool:
    """Whether the batch's auto-accept waits for an audit (``holds``); a batch not checked yet
    (in the middle of its first run) waits too."""
    check = current_check(session, batch, version_id)
    return holds(check is None or check.shifted, audit_verdict(session, batch, settings))


def latest_check(session: Session, batch: str) -> BatchCheck | None:
    """The batch's check by the newest model that matched it."""
    return session.scalar(
        select(BatchCheck)
        .where(BatchCheck.batch == batch)
        .order_by(BatchCheck.model_version_id.desc())
        .limit(1)
    )


def refresh_hold(session: Session, batch: str, settings: Settings) -> bool:
    """Settle the batch's candidates again after its audit changed (a review, an undo).
    Returns whether auto-accept is held."""
    check = latest_check(session, batch)
    if check is None:
        return False
    held = holds(check.shifted, audit_verdict(session, batch, settings))
    settle(session, batch, check.model_version_id, held)
    return held


def hold_reason(shift: Shift) -> str:
    """Why a candidate of a held batch waits in review, for the reviewer."""
    if not shift.shifted:
        return (
            "auto-accept held until the batch's photography is checked (its identify run "
            "has not finished: run it again)"
        )
    return (
        f"auto-accept held for an audit: {shift.reason}; review a random sample "
        "(`coinlens audit --batch`, or the batch's audit page) to earn it"
    )


def batch_signals(session: Session, batch: str, version_id: int) -> list[dict]:
    """The signals kept with the batch's coins' top suggestions from this model."""
    rows = session.scalars(
        select(Suggestion.evidence)
        .join(Specimen, Specimen.id == Suggestion.specimen_id)
        .where(
            Specimen.batch == batch,
            Suggestion.model_version_id == version_id,
            Suggestion.rank == 1,
        )
    ).all()
    return [(evidence or {}).get("signals") or {} for evidence in rows]


def check_batch(home: Home, batch: str, model: CurrentModel) -> tuple[Shift, bool]:
    """Measure the batch's shift over all its coins this model matched, keep it, and settle
    its candidates' decisions. Returns the shift and whether auto-accept is held."""
    version_id = model.version.id
    with home.catalog.session() as session:
        shift = batch_shift(
            model.calibration.shift_profile, batch_signals(session, batch, version_id)
        )
        check = current_check(session, batch, version_id)
        if check is None:
            check = BatchCheck(batch=batch, model_version_id=version_id, calibrated_on=0)
            session.add(check)
        check.n, check.score, check.threshold = shift.n, shift.score, shift.threshold
        check.shifted, check.shift = shift.shifted, shift.as_dict()
        session.flush()
        held = holds(shift.shifted, audit_verdict(session, batch, home.settings))
        settle(session, batch, version_id, held)
    return shift, held


def batch_calibrations(
    session: Session, batches: Iterable[str | None], version_id: int
) -> dict[str, Calibration]:
    """The calibrations refitted for these batches (batches without one are left out)."""
    names = sorted({b for b in batches if b})
    if not names:
        return {}
    rows = session.scalars(
        select(BatchCheck).where(
            BatchCheck.batch.in_(names),
            BatchCheck.model_version_id == version_id,
            BatchCheck.calibration.is_not(None),
        )
    ).all()
    return {row.batch: Calibration.from_dict(row.calibration) for row in rows}


@dataclass(frozen=True)
class Refit:
    batch: str
    reviewed: int
    right: int  # of the reviewed coins, matched without themselves: top suggestion right
    calibration: Calibration | None


def refit_batch(home: Home, batch: str, model: CurrentModel, matcher: Matcher) -> Refit:
    """Refit the batch's calibration on its coins a person reviewed, each matched against the
    references without itself (the batch's other reviewed coins among them), and keep it."""
    with home.catalog.reader() as session:
        reviewed = reviewed_in_batch(session, batch)
        refs = crop_refs(images_of(session, reviewed))
    if not refs:
        return Refit(batch, 0, 0, None)
    arrays = load_crops(home.store, refs, model.embedder.input_size)
    vectors, cues = embed_loaded(model.embedder, arrays, refs)
    groups: dict[int, list[int]] = {}
    for row, ref in enumerate(refs):
        groups.setdefault(ref.specimen_id, []).append(row)
    specimens = list(groups)
    results = matcher.match(
        vectors,
        [groups[s] for s in specimens],
        exclude=[({s}, {refs[r].sha256 for r in groups[s]}) for s in specimens],
        query_cues=cues,
        calibration=model.calibration,
    )
    certainty, correct, similarity = [], [], []
    for specimen_id, (suggestions, _, _) in zip(specimens, results, strict=True):
        top = suggestions[0] if suggestions else None
        certainty.append(top.certainty if top else -np.inf)
        correct.append(bool(top) and top.type_id == reviewed[specimen_id])
        similarity.append(top.similarity if top else 0.0)
    finite = np.isfinite(certainty)
    refitted = recalibrate_for_batch(
        model.calibration,
        np.asarray(certainty)[finite].tolist(),
        np.asarray(correct)[finite].tolist(),
        np.asarray(similarity)[finite].tolist(),
    )
    changed = refitted is not model.calibration
    scope = None
    if changed:  # which reviewed coins the refitted calibration would auto-accept
        again = matcher.match(
            vectors,
            [groups[s] for s in specimens],
            exclude=[({s}, {refs[r].sha256 for r in groups[s]}) for s in specimens],
            query_cues=cues,
            calibration=refitted,
        )
        scope = {
            str(s): decision == "auto_accept"
            for s, (_, decision, _) in zip(specimens, again, strict=True)
        }
    with home.catalog.session() as session:
        check = current_check(session, batch, model.version.id)
        if check is None:
            check = BatchCheck(batch=batch, model_version_id=model.version.id, n=0)
            session.add(check)
        check.calibration = refitted.as_dict() if changed else None
        check.calibrated_on = len(specimens) if changed else 0
        check.audit_scope = scope
    return Refit(batch, len(specimens), int(sum(correct)), refitted if changed else None)


def batches_of(home: Home, specimen_ids: Sequence[int]) -> dict[int, str | None]:
    """{specimen id: its batch}."""
    found: dict[int, str | None] = {}
    with home.catalog.reader() as session:
        for start in range(0, len(specimen_ids), 500):
            chunk = list(specimen_ids[start : start + 500])
            found.update(
                session.execute(
                    select(Specimen.id, Specimen.batch).where(Specimen.id.in_(chunk))
                ).all()
            )
    return found
