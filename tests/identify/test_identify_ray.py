"""``coinlens identify --engine ray``: the same suggestions as the local engine, on a local Ray."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from reviewable import SAMPLE, copy_home

pytest.importorskip("ray", reason="Ray is an optional extra: pip install -e '.[ray]'")


def _identify(cli, home: Path, folder: Path, out: Path, *engine: str) -> list[dict]:
    result = cli("identify", folder, "--home", home, "--out", out, "--top-k", "3", *engine)
    assert result.exit_code == 0, result.stderr
    return sorted(map(json.loads, out.read_text().splitlines()), key=lambda r: r["accession"])


def test_ray_engine_gives_the_local_engines_suggestions(cli, reviewable_template, tmp_path):
    folder = tmp_path / "intake"
    for name in ("2e", "1c", "20c"):
        shutil.copytree(SAMPLE / "backlog" / name, folder / name)
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
    assert len(local) == len(ray) == 60
    for one, other in zip(local, ray, strict=True):
        assert one["accession"] == other["accession"]
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
