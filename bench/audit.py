"""A shifted batch from identify to an audit and Match again, as a curator would run it.

    python bench/audit.py HOME FOLDER [--budget 50] [--first 30] [--teach 0] [--json OUT]

HOME: a home with a trained model (it is changed: work on a copy). FOLDER: photos of one batch
named ``<label>_...`` (the label is the truth, never shown to coinlens). The batch is identified
(``coinlens identify``), its audit drawn (``audit_sample`` coins, stratified by suggested type),
each drawn coin reviewed as the truth says (accept where the suggestion is right, else correct),
then matched again with its reviewed coins as references and its calibration refitted; where
the audit still holds it and the budget allows, the coins its verdict asks for are drawn and
reviewed, and the batch matched again; ``--teach N`` first spends N of the budget on coins
drawn where they teach the calibration most (``purpose="teach"``). Prints and writes JSON:
before and after, the batch's top-1, the share auto-accepted and how many of those are right,
the audit's verdict.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import select

from coinlens.catalog import CoinType, Home, Specimen
from coinlens.identify.batch import identify_specimens
from coinlens.identify.service import Identifier
from coinlens.review import review_specimen
from coinlens.review.audit import audit_status, draw_sample, refresh_after_review

AUDIT_KEYS = (
    "shift",
    "candidates",
    "drawn",
    "reviewed",
    "wrong",
    "precision",
    "lower_bound",
    "required",
    "held",
    "more_needed",
    "message",
)


def truth_of(home: Home, batch: str) -> dict[int, int]:
    with home.catalog.reader() as session:
        types = {t.reference: t.id for t in session.scalars(select(CoinType))}
        rows = session.execute(
            select(Specimen.id, Specimen.accession).where(Specimen.batch == batch)
        ).all()
    return {i: types[a.split("/")[-1].split("_")[0]] for i, a in rows}


def measure(home: Home, batch: str, truth: dict[int, int]) -> dict:
    """Top-1 over the batch's coins still waiting, and what would be bulk accepted now."""
    with home.catalog.reader() as session:
        rows = session.execute(
            select(Specimen.id, Specimen.suggested_type_id, Specimen.decision).where(
                Specimen.batch == batch, Specimen.status != "catalogued"
            )
        ).all()
    right = [truth[i] == t for i, t, _ in rows]
    accepted = [truth[i] == t for i, t, d in rows if d == "auto_accept"]
    status = audit_status(home.catalog, batch, home.settings)
    return {
        "waiting": len(rows),
        "top1": round(sum(right) / len(rows), 4) if rows else None,
        "auto_accepted": len(accepted),
        "auto_accepted_share_of_batch": round(len(accepted) / len(truth), 4),
        "auto_accepted_right": round(sum(accepted) / len(accepted), 4) if accepted else None,
        "audit": {k: status[k] for k in AUDIT_KEYS},
    }


def review_drawn(home: Home, identifier: Identifier, ids: list[int], truth: dict[int, int]) -> int:
    wrong = 0
    for specimen_id in ids:
        with home.catalog.reader() as session:
            suggested = session.get(Specimen, specimen_id).suggested_type_id
        right = suggested == truth[specimen_id]
        wrong += not right
        review_specimen(
            home.catalog,
            specimen_id,
            reviewer="bench",
            action="accept" if right else "correct",
            expected_version=None,
            type_id=None if right else truth[specimen_id],
        )
        identifier.add_specimens([specimen_id])
        refresh_after_review(home.catalog, [specimen_id], home.settings)
    return wrong


def match_again(home: Home, identifier: Identifier, batch: str) -> dict:
    model, matcher = identifier.ready()
    with home.catalog.reader() as session:
        ids = session.scalars(
            select(Specimen.id).where(Specimen.batch == batch, Specimen.status == "backlog")
        ).all()
    summary = identify_specimens(home, model, matcher, ids, target="bench", rescore=True)
    return summary.get("recalibrated", {}).get(batch, {})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("home")
    parser.add_argument("folder", type=Path)
    parser.add_argument("--budget", type=int, default=50)
    parser.add_argument("--first", type=int, default=30)
    parser.add_argument("--teach", type=int, default=0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    started = time.perf_counter()
    batch = args.folder.name
    subprocess.run(
        [sys.executable, "-m", "coinlens", "identify", str(args.folder), "--home", args.home],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    home = Home.open(args.home)
    truth = truth_of(home, batch)
    result: dict = {"batch": batch, "coins": len(truth), "before": measure(home, batch, truth)}
    identifier = Identifier(home)
    reviewed, rounds = 0, []
    if args.teach:
        ids = draw_sample(home.catalog, batch, n=args.teach, reviewer="bench", purpose="teach")
        wrong = review_drawn(home, identifier, ids, truth)
        reviewed += len(ids)
        refit = match_again(home, identifier, batch)
        rounds.append({"teach": len(ids), "wrong": wrong, "refit": refit})
    draw = min(args.first, args.budget - reviewed)
    while draw > 0:
        ids = draw_sample(home.catalog, batch, n=draw, reviewer="bench", seed=len(rounds))
        wrong = review_drawn(home, identifier, ids, truth)
        reviewed += len(ids)
        refit = match_again(home, identifier, batch)
        status = audit_status(home.catalog, batch, home.settings)
        rounds.append(
            {"drawn": len(ids), "wrong": wrong, "refit": refit, "message": status["message"]}
        )
        more = status["more_needed"] if status["held"] else 0
        draw = min(more or 0, args.budget - reviewed)
        if status["held"] and more and more > args.budget - reviewed:
            break
    result["rounds"] = rounds
    result["reviewed"] = reviewed
    result["after"] = measure(home, batch, truth)
    result["seconds"] = round(time.perf_counter() - started, 1)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
