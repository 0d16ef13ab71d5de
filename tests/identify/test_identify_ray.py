"""The Ray engine on a local Ray: ``identify --engine ray`` (localisation and embedding in actor
pools) gives the local engine's catalogue and suggestions, ``train --engine ray`` the local
engine's reference vectors, and a run whose actor is killed still ends complete."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from coinlens.catalog import Home, Specimen, Suggestion
from coinlens.identify.engine import catalogued_crops, current_model, embed_refs
from coinlens.index import ReferenceIndex
from reviewable import SAMPLE, copy_home

COINLENS = Path(sys.executable).parent / "coinlens"

pytest.importorskip("ray", reason="Ray is an optional extra: pip install -e '.[ray]'")


def _identify(cli, home: Path, folder: Path, out: Path, *engine: str) -> list[dict]:
    result = cli("identify", folder, "--home", home, "--out", out, "--top-k", "3", *engine)
    assert result.exit_code == 0, result.stderr
    if (folder / "tray" / "broken.jpg").exists():  # named in one line, the batch goes on
        assert "broken.jpg" in result.stderr
    return sorted(map(json.loads, out.read_text().splitlines()), key=lambda r: r["accession"])


def test_ray_engine_gives_the_local_engines_suggestions(cli, reviewable_template, tmp_path):
    folder = tmp_path / "intake"
    for name in ("2e", "1c", "20c"):
        shutil.copytree(SAMPLE / "backlog" / name, folder / name)
    (folder / "tray").mkdir()
    shutil.copy(SAMPLE / "trays" / "test_test_1.jpg", folder / "tray")  # one coin per specimen
    (folder / "tray" / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")  # one bad file
    local = _identify(
        cli, copy_home(reviewable_template, tmp_path / "a"), folder, tmp_path / "local.jsonl"
    )
    ray = _identify(
        cli,
        copy_home(reviewable_template, tmp_path / "b"),
        folder,
        tmp_path / "ray.jsonl",
        "--engine",
        "ray",
    )
    tray_coins = [r for r in local if "#" in r["accession"]]
    assert len(tray_coins) >= 8 and len(local) == len(ray) == 60 + len(tray_coins)
    for one, other in zip(local, ray, strict=True):
        assert one["accession"] == other["accession"]
        assert one["images"] == other["images"]  # same sides, same boxes in the tray
        assert one["decision"] == other["decision"]
        assert [s["type"] for s in one["suggestions"]] == [s["type"] for s in other["suggestions"]]
        for a, b in zip(one["suggestions"], other["suggestions"], strict=True):
            assert a["score"] == pytest.approx(b["score"], abs=1e-5)
            assert a["evidence"] == b["evidence"]


def test_an_unreachable_ray_cluster_is_a_clear_error(cli, reviewable_template, tmp_path):
    folder = tmp_path / "intake"
    shutil.copytree(SAMPLE / "backlog" / "2e", folder / "2e")
    home = copy_home(reviewable_template, tmp_path / "home")
    result = cli(
        "identify", folder, "--home", home, "--engine", "ray", "--address", "ray://127.0.0.1:1"
    )
    assert result.exit_code == 2 and "cannot start or reach Ray" in result.stderr


@pytest.fixture(autouse=True, scope="module")
def _stop_ray():
    """The local Ray the CLI started in this process goes when these tests are done."""
    yield
    import ray

    ray.shutdown()


def test_train_on_ray_gives_the_local_models_reference_vectors(cli, reviewable_template, tmp_path):
    home = copy_home(reviewable_template, tmp_path / "home")
    result = cli("train", "--home", home, "--epochs", "1", "--engine", "ray", "--json")
    assert result.exit_code == 0, result.stderr
    with Home.open(home) as opened:
        model = current_model(opened)
        assert model.version.artefacts  # the trained model, not the pretrained one
        index = ReferenceIndex.load(opened.store, model.index_key, model.embedder.dim)
        refs = catalogued_crops(opened)
        assert sorted(index.ids) == sorted(r.image_id for r in refs)
        here, _ = embed_refs(opened, model.embedder, refs)
        on_ray = index.vectors([r.image_id for r in refs])
    assert np.abs(here - on_ray).max() < 1e-4


def _kill_when_busy(title: str, stop: threading.Event, killed: list[int]) -> None:
    """SIGKILL the first Ray worker process whose title says it is running ``title``'s work."""
    while not stop.is_set() and not killed:
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                command = (proc / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if f"MapBatches({title})).submit" in command:
                os.kill(int(proc.name), signal.SIGKILL)
                killed.append(int(proc.name))
                return
        time.sleep(0.02)


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds Ray's worker processes in /proc")
def test_a_killed_actor_costs_no_suggestion(reviewable_template, tmp_path):
    home = copy_home(reviewable_template, tmp_path / "home")
    folder = tmp_path / "intake"
    for name in ("5c", "10c", "20c"):
        shutil.copytree(SAMPLE / "backlog" / name, folder / name)
    command = [str(COINLENS), "identify", str(folder), "--home", str(home), "--top-k", "3"]
    stop, killed = threading.Event(), []
    killer = threading.Thread(target=_kill_when_busy, args=("CropEmbedder", stop, killed))
    killer.start()
    try:
        first = subprocess.run([*command, "--engine", "ray"], capture_output=True, timeout=600)
    finally:
        stop.set()
        killer.join()
    assert killed, "no embedding actor was seen at work"
    # Ray restarts the actor and retries its batch; were it to give up, the re-run finishes.
    if first.returncode != 0:
        rerun = subprocess.run([*command, "--engine", "ray"], capture_output=True, timeout=600)
        assert rerun.returncode == 0, rerun.stderr
    with Home.open(home) as opened, opened.catalog.reader() as session:
        ids = session.scalars(select(Specimen.id).where(Specimen.batch == "intake")).all()
        ranks = session.execute(
            select(Suggestion.specimen_id, Suggestion.rank).where(Suggestion.specimen_id.in_(ids))
        ).all()
    assert len(ids) == 60
    by_specimen: dict[int, list[int]] = {}
    for specimen_id, rank in ranks:
        by_specimen.setdefault(specimen_id, []).append(rank)
    assert set(by_specimen) == set(ids)  # none missing
    assert all(sorted(r) == [1, 2, 3] for r in by_specimen.values())  # none doubled
