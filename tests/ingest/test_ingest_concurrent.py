"""Two ingests of overlapping folders at once into one catalogue: both finish, nothing doubles."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from sqlalchemy import func, select

from coinlens.catalog import CoinType, Home, Image, Specimen
from helpers import make_image

COINLENS = Path(sys.executable).parent / "coinlens"


def test_two_ingests_at_once(home: Path, tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    for index in range(40):
        make_image(
            photos / f"type{index % 4}" / f"{index:03d}.png", fmt="PNG", size=300, seed=index
        )
    assert subprocess.run([str(COINLENS), "init", "--home", str(home)], timeout=60).returncode == 0
    runs = [
        subprocess.Popen(
            [str(COINLENS), "ingest", str(photos), "--home", str(home), "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    reports = []
    for run in runs:
        stdout, stderr = run.communicate(timeout=300)
        assert run.returncode == 0, stderr
        reports.append(json.loads(stdout))
    assert sum(r["ingested"] for r in reports) >= 40
    assert all(r["ingested"] + r["already_present"] == 40 for r in reports)
    with Home.open(home) as opened, opened.catalog.reader() as session:
        assert session.scalar(select(func.count()).select_from(Specimen)) == 40
        assert session.scalar(select(func.count()).select_from(Image)) == 40
        assert session.scalar(select(func.count()).select_from(CoinType)) == 4
