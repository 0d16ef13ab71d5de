"""The ancient sample (``examples/ans-roman``) split as a museum would meet it: two coins of
each type catalogued from the manifest, the third photographed as a backlog batch."""

from __future__ import annotations

import csv
import shutil
from dataclasses import dataclass
from pathlib import Path

SAMPLE = Path(__file__).resolve().parents[1] / "examples" / "ans-roman"


@dataclass
class AncientSample:
    manifest: Path  # the catalogued coins' rows
    backlog: Path  # ``<accession>_obv.jpg`` and ``_rev.jpg`` of the held-back coins
    truth: dict[str, dict[str, str]]  # backlog accession ("ans-backlog/<accession>") -> its row


def sample_rows() -> list[dict[str, str]]:
    return list(csv.DictReader((SAMPLE / "manifest.csv").open(encoding="utf-8")))


def split_sample(root: Path) -> AncientSample:
    rows = sample_rows()
    coins: dict[str, list[str]] = {}
    for row in rows:
        accessions = coins.setdefault(row["type_reference"], [])
        if row["accession"] not in accessions:
            accessions.append(row["accession"])
    held_back = {accessions[-1] for accessions in coins.values()}
    catalogue = root / "ans"
    shutil.copytree(SAMPLE, catalogue)
    with (catalogue / "manifest.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(row for row in rows if row["accession"] not in held_back)
    backlog = root / "trays" / "ans-backlog"
    backlog.mkdir(parents=True)
    truth = {}
    for row in rows:
        if row["accession"] in held_back:
            shutil.copy(SAMPLE / row["image"], backlog / Path(row["image"]).name)
            truth[f"ans-backlog/{row['accession']}"] = row
    return AncientSample(catalogue / "manifest.csv", backlog, truth)
