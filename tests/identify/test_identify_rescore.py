"""``coinlens identify --rescore``: coins already done are matched again against the references
as they are now, so a new type's first photos reach the backlog without retraining, and a coin
catalogued in review is never matched against itself."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from sqlalchemy import func, select

from coinlens.catalog import CoinType, Home, Image, Suggestion
from coinlens.review import review_specimen
from reviewable import SAMPLE


def _copy(source: Path, target: Path, count: int) -> None:
    target.mkdir(parents=True)
    for path in sorted(source.glob("*.jpg"))[:count]:
        shutil.copy(path, target / path.name)


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_new_types_first_photos_reach_the_backlog_on_rescore(cli, home, tmp_path) -> None:
    references, new_type, batch = tmp_path / "refs", tmp_path / "new", tmp_path / "batch"
    for name in ("1c", "5c", "10c", "20c", "50c", "1e"):  # the catalogue lacks 2 euro
        _copy(SAMPLE / "references" / name, references / name, 8)
    _copy(SAMPLE / "references" / "2e", new_type / "2e", 3)
    for name in ("2e", "1e", "10c"):
        _copy(SAMPLE / "backlog" / name, batch / name, 8)
    assert cli("init", "--home", home).exit_code == 0
    assert cli("ingest", references, "--home", home).exit_code == 0
    first = cli("identify", batch, "--home", home, "--out", tmp_path / "first.jsonl")
    assert first.exit_code == 0, first.stderr
    before = _records(tmp_path / "first.jsonl")
    assert not any(s["type"] == "2e" for r in before for s in r["suggestions"])

    assert cli("ingest", new_type, "--home", home).exit_code == 0  # the new type's first photos
    again = cli("identify", batch, "--home", home, "--out", tmp_path / "again.jsonl")
    assert again.exit_code == 0, again.stderr
    assert "0 coins identified (24 already done)" in again.stdout
    assert "--rescore" in again.stdout  # says how to match them again
    assert _records(tmp_path / "again.jsonl") == before  # kept as they were

    rescored = cli(
        "identify", batch, "--home", home, "--rescore", "--out", tmp_path / "rescored.jsonl"
    )
    assert rescored.exit_code == 0, rescored.stderr
    assert "24 coins matched again" in rescored.stdout
    after = _records(tmp_path / "rescored.jsonl")
    assert [r["specimen_id"] for r in after] == [r["specimen_id"] for r in before]
    two_euro = [r for r in after if "/2e/" in r["source"]]
    found = sum(r["suggestions"][0]["type"] == "2e" for r in two_euro)
    assert found >= 6, f"{found} of 8 two-euro coins suggested as 2e after the rescore"
    with Home.open(home) as opened, opened.catalog.reader() as session:
        ranks = session.execute(
            select(Suggestion.specimen_id, func.count()).group_by(Suggestion.specimen_id)
        ).all()
    assert {count for _, count in ranks} == {5}  # replaced, not doubled


def test_a_coin_catalogued_in_review_is_never_its_own_evidence(cli, home, tmp_path) -> None:
    references, batch = tmp_path / "refs", tmp_path / "batch"
    for name in ("1c", "10c", "2e"):
        _copy(SAMPLE / "references" / name, references / name, 6)
        _copy(SAMPLE / "backlog" / name, batch / name, 2)
    assert cli("init", "--home", home).exit_code == 0
    assert cli("ingest", references, "--home", home).exit_code == 0
    assert cli("identify", batch, "--home", home, "--out", tmp_path / "first.jsonl").exit_code == 0
    coin = next(r for r in _records(tmp_path / "first.jsonl") if "/2e/" in r["source"])
    with Home.open(home) as opened:
        with opened.catalog.reader() as session:
            two_euro = session.scalar(select(CoinType.id).where(CoinType.reference == "2e"))
            own = set(
                session.scalars(select(Image.key).where(Image.specimen_id == coin["specimen_id"]))
            )
        review_specimen(
            opened.catalog,
            coin["specimen_id"],
            reviewer="ada",
            action="correct",
            expected_version=None,
            type_id=two_euro,
        )  # catalogued: its photo is a reference now

    rescored = cli(
        "identify", batch, "--home", home, "--rescore", "--out", tmp_path / "rescored.jsonl"
    )
    assert rescored.exit_code == 0, rescored.stderr
    again = next(
        r for r in _records(tmp_path / "rescored.jsonl") if r["specimen_id"] == coin["specimen_id"]
    )
    evidence = {key for s in again["suggestions"] for key in s["evidence"]}
    assert own and not own & evidence
    assert again["suggestions"][0]["similarity"] < 0.99


def test_a_catalogued_coins_own_photo_in_the_backlog_goes_to_review(cli, home, tmp_path) -> None:
    references, batch = tmp_path / "refs", tmp_path / "batch"
    for name in ("1c", "2e"):
        _copy(SAMPLE / "references" / name, references / name, 6)
    _copy(SAMPLE / "references" / "2e", batch / "again", 1)  # a catalogued coin's own file
    _copy(SAMPLE / "backlog" / "2e", batch / "new", 1)
    shutil.copy(SAMPLE / "trays" / "test_test_1.jpg", batch / "tray.jpg")
    assert cli("init", "--home", home).exit_code == 0
    assert cli("ingest", references, "--home", home).exit_code == 0
    first = cli("identify", batch, "--home", home, "--out", tmp_path / "first.jsonl")
    assert first.exit_code == 0, first.stderr
    records = {r["accession"]: r for r in _records(tmp_path / "first.jsonl")}
    copy = records[f"batch/again/{sorted((batch / 'again').iterdir())[0].name}"]
    assert copy["decision"] == "review"
    assert copy["decision_reason"].startswith("the same photo as catalogued coin refs/2e/")
    assert copy["suggestions"][0]["type"] == "2e"
    others = [r for a, r in records.items() if not a.startswith("batch/again/")]
    assert len(others) > 20  # the single coin and the tray's
    assert not any("the same photo" in (r["decision_reason"] or "") for r in others)

    # A tray's coins share its photo: one catalogued makes no copy of the others.
    tray_coin = next(r for a, r in records.items() if a.startswith("batch/tray.jpg#"))
    with Home.open(home) as opened:
        review_specimen(
            opened.catalog,
            tray_coin["specimen_id"],
            reviewer="ada",
            action="accept",
            expected_version=None,
        )
    again = cli("identify", batch, "--home", home, "--rescore", "--out", tmp_path / "again.jsonl")
    assert again.exit_code == 0, again.stderr
    flagged = [
        r
        for r in _records(tmp_path / "again.jsonl")
        if "the same photo" in (r["decision_reason"] or "")
    ]
    assert [r["accession"] for r in flagged] == [copy["accession"]]
