"""Folder ingest: labels from folders, backlog, idempotence, content-addressed storage, S3."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from sqlalchemy import func, select

from coinlens.catalog import CoinType, Home, Image, Job, Specimen
from helpers import make_image


def _status(cli, home: Path) -> dict:
    result = cli("status", "--home", home, "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture
def collection(tmp_path: Path) -> Path:
    """Two types, one nested, and two unlabelled photos at the top."""
    root = tmp_path / "collection"
    make_image(root / "RRC 273-1" / "a.jpg", seed=1)
    make_image(root / "RRC 273-1" / "b.png", fmt="PNG", seed=2)
    make_image(root / "han" / "wuzhu" / "c.jpg", seed=3)
    make_image(root / "loose.jpg", seed=4)
    make_image(root / "loose2.webp", fmt="WEBP", seed=5)
    (root / "han" / "notes.txt").write_text("not a photo")
    (root / ".DS_Store").write_bytes(b"\0")
    return root


def test_labels_types_and_backlog(cli, home: Path, collection: Path) -> None:
    result = cli("ingest", collection, "--home", home)
    assert result.exit_code == 0, result.stderr
    assert _status(cli, home) == {
        "types": 2,
        "specimens": {"catalogued": 3, "backlog": 2, "in_review": 0},
        "images": 5,
        "models": 0,
    }
    with Home.open(home) as opened, opened.catalog.reader() as session:
        specimens = {s.accession: s for s in session.scalars(select(Specimen)).all()}
        assert specimens["collection/RRC 273-1/a.jpg"].coin_type.reference == "RRC 273-1"
        assert specimens["collection/han/wuzhu/c.jpg"].coin_type.reference == "han/wuzhu"
        assert specimens["collection/loose.jpg"].status == "backlog"
        assert specimens["collection/loose.jpg"].type_id is None
        assert specimens["collection/loose.jpg"].batch == "collection"
        for image in session.scalars(select(Image)).all():
            data = opened.store.get(image.key)
            assert hashlib.sha256(data).hexdigest() == image.sha256
            assert image.key == f"images/{image.sha256[:2]}/{image.sha256}{Path(image.key).suffix}"
            assert data == Path(image.source).read_bytes()  # the original, byte for byte
            assert opened.store.exists(image.thumbnail_key)
            assert (image.width, image.height) == (96, 96)
    assert "non-image files ignored" in result.stdout


def test_second_ingest_adds_nothing(cli, home: Path, collection: Path) -> None:
    assert cli("ingest", collection, "--home", home).exit_code == 0
    before = _status(cli, home)
    with Home.open(home) as opened:
        stored = list(opened.store.list())
    again = cli("ingest", collection, "--home", home, "--json")
    assert again.exit_code == 0
    summary = json.loads(again.stdout)
    assert summary["ingested"] == 0 and summary["already_present"] == 5
    assert _status(cli, home) == before
    with Home.open(home) as opened, opened.catalog.reader() as session:
        assert list(opened.store.list()) == stored
        jobs = session.scalars(select(Job).order_by(Job.id)).all()
        assert [(job.state, job.done, job.skipped) for job in jobs] == [
            ("done", 5, 0),
            ("done", 0, 5),
        ]


def test_a_new_file_in_the_folder_is_picked_up(cli, home: Path, collection: Path) -> None:
    assert cli("ingest", collection, "--home", home).exit_code == 0
    make_image(collection / "RRC 273-1" / "new.jpg", seed=9)
    result = cli("ingest", collection, "--home", home, "--json")
    assert json.loads(result.stdout)["ingested"] == 1


def test_status_backlog_keeps_folder_label_in_notes(cli, home: Path, collection: Path) -> None:
    assert cli("ingest", collection, "--home", home, "--status", "backlog").exit_code == 0
    status = _status(cli, home)
    assert status["types"] == 0 and status["specimens"]["backlog"] == 5
    with Home.open(home) as opened, opened.catalog.reader() as session:
        specimen = session.scalar(
            select(Specimen).where(Specimen.accession == "collection/han/wuzhu/c.jpg")
        )
        assert json.loads(specimen.notes) == {"folder_label": "han/wuzhu"}


def test_same_picture_twice_is_stored_once(cli, home: Path, tmp_path: Path) -> None:
    root = tmp_path / "dups"
    make_image(root / "t1" / "x.jpg", seed=7)
    shutil.copy(root / "t1" / "x.jpg", root / "t1" / "copy.jpg")
    result = cli("ingest", root, "--home", home, "--json")
    assert json.loads(result.stdout)["shared_content"] == 1
    assert "same picture as 'dups/t1/" in result.stderr
    with Home.open(home) as opened, opened.catalog.reader() as session:
        assert session.scalar(select(func.count()).select_from(Image)) == 2
        assert len(list(opened.store.list("images/"))) == 1


def test_empty_or_missing_folder_is_bad_input(cli, home: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = cli("ingest", tmp_path / "empty", "--home", home)
    assert result.exit_code == 2
    assert result.stderr.strip().endswith("empty: no images found")
    result = cli("ingest", tmp_path / "missing", "--home", home)
    assert result.exit_code == 2
    assert "missing: no such file or folder" in result.stderr
    result = cli("ingest", tmp_path, "--home", home, "--status", "done")
    assert result.exit_code == 2 and "--status 'done'" in result.stderr


def test_ingest_into_s3_store(cli, home: Path, collection: Path, s3_server, bucket) -> None:
    env = {**s3_server.env(), "COINLENS_STORE_URL": f"s3://{bucket}/coinlens"}
    result = cli("ingest", collection, "--home", home, env=env)
    assert result.exit_code == 0, result.stderr
    keys = [o["Key"] for o in s3_server.client().list_objects_v2(Bucket=bucket)["Contents"]]
    assert sum(key.startswith("coinlens/images/") for key in keys) == 5
    assert sum(key.startswith("coinlens/thumbnails/") for key in keys) == 5
    assert not (home / "store").exists()
    again = cli("ingest", collection, "--home", home, "--json", env=env)
    assert json.loads(again.stdout)["already_present"] == 5


@pytest.mark.slow
def test_all_of_euro_kaa_train(cli, home: Path, data_root: Path) -> None:
    """1,291 real crops of 8 types: every image catalogued with its folder's type, once."""
    train = data_root / "euro-kaa" / "train"
    expected = {
        f"train/{path.relative_to(train).as_posix()}": path.parent.name
        for path in train.rglob("*.jpg")
    }
    assert len(expected) == 1291
    result = cli("ingest", train, "--home", home, "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["ingested"] == 1291
    with Home.open(home) as opened, opened.catalog.reader() as session:
        rows = session.execute(
            select(Specimen.accession, CoinType.reference, Specimen.status).join(
                CoinType, Specimen.type_id == CoinType.id
            )
        ).all()
        assert {accession: ref for accession, ref, _ in rows} == expected
        assert {status for _, _, status in rows} == {"catalogued"}
        assert session.scalar(select(func.count()).select_from(Image)) == 1291
    again = cli("ingest", train, "--home", home, "--json")
    summary = json.loads(again.stdout)
    assert (summary["ingested"], summary["already_present"]) == (0, 1291)
    assert _status(cli, home)["images"] == 1291
