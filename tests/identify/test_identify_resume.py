"""An identify batch killed part way (SIGKILL of the driver) re-runs to completion with no
duplicate and no missing suggestion."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import func, select

from coinlens.catalog import Home, Job, Specimen, Suggestion
from reviewable import SAMPLE, copy_home

COINLENS = Path(sys.executable).parent / "coinlens"


def _suggested(home: Path, batch: str) -> int:
    with Home.open(home) as opened, opened.catalog.reader() as session:
        return session.scalar(
            select(func.count(func.distinct(Suggestion.specimen_id)))
            .join(Specimen, Suggestion.specimen_id == Specimen.id)
            .where(Specimen.batch == batch)
        )


def test_sigkill_of_identify_then_rerun_completes(reviewable_template, tmp_path: Path) -> None:
    home = copy_home(reviewable_template, tmp_path / "home")
    backlog = tmp_path / "intake"
    for name in ("5c", "10c", "20c", "1e", "50c"):  # 100 coins: two chunks of identify
        shutil.copytree(SAMPLE / "backlog" / name, backlog / name)
    total = sum(1 for _ in backlog.rglob("*.jpg"))
    command = [str(COINLENS), "identify", str(backlog), "--home", str(home), "--top-k", "3"]
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while _suggested(home, "intake") == 0:  # the first chunk is committed
        assert first.poll() is None, first.stderr.read()
        assert time.monotonic() < deadline, "identify made no progress"
        time.sleep(0.2)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=60)
    done_before = _suggested(home, "intake")
    assert 0 < done_before < total

    rerun = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert f"({done_before} already done)" in rerun.stdout
    with Home.open(home) as opened, opened.catalog.reader() as session:
        ids = session.scalars(select(Specimen.id).where(Specimen.batch == "intake")).all()
        assert len(ids) == total
        ranks = session.execute(
            select(Suggestion.specimen_id, Suggestion.rank)
            .where(Suggestion.specimen_id.in_(ids))
            .order_by(Suggestion.specimen_id, Suggestion.rank)
        ).all()
        by_specimen: dict[int, list[int]] = {}
        for specimen_id, rank in ranks:
            by_specimen.setdefault(specimen_id, []).append(rank)
        assert set(by_specimen) == set(ids)  # none missing
        assert all(r == [1, 2, 3] for r in by_specimen.values())  # none doubled
        states = session.scalars(
            select(Job.state).where(Job.kind == "identify").order_by(Job.id)
        ).all()
        assert states[-1] == "done"
