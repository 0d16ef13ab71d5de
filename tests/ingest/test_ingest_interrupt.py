"""An ingest killed part way leaves a consistent catalogue, and a re-run completes it."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from coinlens.catalog import Home, Image, Job, Specimen
from coinlens.storage import sha256_hex
from helpers import make_image

COINLENS = Path(sys.executable).parent / "coinlens"
N_IMAGES = 240


@pytest.fixture(scope="module")
def big_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("interrupt") / "photos"
    for index in range(N_IMAGES):
        make_image(root / f"type{index % 4}" / f"{index:04d}.png", fmt="PNG", size=700, seed=index)
    return root


def _images_in_db(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as connection:
            return connection.execute("SELECT count(*) FROM image").fetchone()[0]
    except sqlite3.OperationalError:
        return 0  # schema not created yet


def _start(folder: Path, home: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COINLENS_")}
    env["COINLENS_INGEST_WORKERS"] = "2"
    return subprocess.Popen(
        [str(COINLENS), "ingest", str(folder), "--home", str(home), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        # A background CI shell starts children with SIGINT ignored; Ctrl-C must reach this one.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def _interrupt_part_way(folder: Path, home: Path, sig: int) -> subprocess.Popen:
    process = _start(folder, home)
    deadline = time.monotonic() + 120
    while _images_in_db(home / "coinlens.db") < 40:
        assert process.poll() is None, process.stderr.read()
        assert time.monotonic() < deadline, "ingest made no progress"
        time.sleep(0.05)
    process.send_signal(sig)
    process.wait(timeout=60)
    return process


def _check_integrity(home: Path) -> int:
    """Every image row points at stored bytes with its hash; no specimen lacks an image."""
    with Home.open(home) as opened, opened.catalog.reader() as session:
        images = session.scalars(select(Image)).all()
        for image in images:
            assert sha256_hex(opened.store.get(image.key)) == image.sha256
            assert opened.store.exists(image.thumbnail_key)
        empty = session.scalar(
            select(func.count()).select_from(Specimen).where(~Specimen.images.any())
        )
        assert empty == 0
        with opened.catalog.engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
        return len(images)


def test_sigkill_then_rerun_completes(big_folder: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    killed = _interrupt_part_way(big_folder, home, signal.SIGKILL)
    assert killed.returncode == -signal.SIGKILL
    partial = _check_integrity(home)
    assert 40 <= partial < N_IMAGES

    rerun = _start(big_folder, home)
    stdout, stderr = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, stderr
    summary = json.loads(stdout)
    assert summary["ingested"] + summary["already_present"] == N_IMAGES
    assert summary["already_present"] == partial
    assert _check_integrity(home) == N_IMAGES
    with Home.open(home) as opened, opened.catalog.reader() as session:
        assert session.scalar(select(func.count()).select_from(Specimen)) == N_IMAGES
        states = session.scalars(select(Job.state).order_by(Job.id)).all()
        assert states == ["interrupted", "done"]  # the killed run is recorded as such


def test_ctrl_c_stops_cleanly_and_says_so(big_folder: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    stopped = _interrupt_part_way(big_folder, home, signal.SIGINT)
    message = stopped.stderr.read()
    assert stopped.returncode == 130, message
    assert "interrupted; what was ingested is kept, re-run to finish" in message
    partial = _check_integrity(home)
    with Home.open(home) as opened, opened.catalog.reader() as session:
        job = session.scalar(select(Job))
        assert (job.state, job.done) == ("interrupted", partial)
