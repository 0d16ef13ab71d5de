"""``--sides-from-names``: a coin photographed as two files (``ACC_obv.jpg``, ``ACC_rev.jpg``) is
one specimen with both sides, in ingest and in identify, so both sides count in its match."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

from sqlalchemy import select

from coinlens.catalog import Home, Image, Specimen
from reviewable import SAMPLE


def _photos(folder: str, count: int) -> list[Path]:
    return sorted((SAMPLE / folder).glob("*.jpg"))[:count]


def _sides(home: Path) -> dict[str, list[tuple[str, str]]]:
    """{accession: [(side, source file name), ...]} of every specimen."""
    with Home.open(home) as opened, opened.catalog.reader() as session:
        rows = session.execute(
            select(Specimen.accession, Image.side, Image.source)
            .join(Image, Image.specimen_id == Specimen.id)
            .order_by(Specimen.accession, Image.side)
        ).all()
    out: dict[str, list[tuple[str, str]]] = {}
    for accession, side, source in rows:
        out.setdefault(accession, []).append((side, Path(source).name))
    return out


def test_side_names_pair_the_files_of_one_coin(cli, home: Path, tmp_path: Path) -> None:
    two_euro = tmp_path / "refs" / "2e"
    two_euro.mkdir(parents=True)
    first, second, third = _photos("references/2e", 3)
    shutil.copy(first, two_euro / "A1_obv.jpg")
    shutil.copy(second, two_euro / "A1_Rev.JPG")
    shutil.copy(third, two_euro / "A2-reverse.jpg")
    shutil.copy(third, two_euro / "plain_photo.jpg")
    assert cli("init", "--home", home).exit_code == 0
    result = cli("ingest", tmp_path / "refs", "--home", home, "--sides-from-names", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["new_specimens"] == 3
    assert _sides(home) == {
        "refs/2e/A1": [("obverse", "A1_obv.jpg"), ("reverse", "A1_Rev.JPG")],
        "refs/2e/A2": [("reverse", "A2-reverse.jpg")],
        "refs/2e/plain_photo.jpg": [("unknown", "plain_photo.jpg")],  # no side in its name
    }
    again = cli("ingest", tmp_path / "refs", "--home", home, "--sides-from-names", "--json")
    assert json.loads(again.stdout)["new_specimens"] == 0  # safe to repeat
    manifest = tmp_path / "refs" / "coins.csv"
    manifest.write_text("image,accession,side\n2e/A1_obv.jpg,A1,obverse\n")
    both = cli("ingest", "--manifest", manifest, tmp_path / "refs", "--home", home,
               "--sides-from-names")  # fmt: skip
    assert both.exit_code == 2 and "side column" in both.stderr


def test_identify_matches_both_sides_of_a_coin_as_one(cli, home: Path, tmp_path: Path) -> None:
    references, batch = tmp_path / "refs", tmp_path / "batch"
    for name in ("1c", "10c", "2e"):
        (references / name).mkdir(parents=True)
        for path in _photos(f"references/{name}", 6):
            shutil.copy(path, references / name / path.name)
    batch.mkdir()
    obverse, reverse = _photos("backlog/2e", 2)
    shutil.copy(obverse, batch / "B7_o.jpg")
    shutil.copy(reverse, batch / "B7_r.jpg")
    shutil.copy(_photos("backlog/10c", 1)[0], batch / "B8.jpg")
    assert cli("init", "--home", home).exit_code == 0
    assert cli("ingest", references, "--home", home).exit_code == 0
    out = tmp_path / "out.jsonl"
    result = cli("identify", batch, "--home", home, "--sides-from-names", "--out", out)
    assert result.exit_code == 0, result.stderr
    assert "2 coins identified" in result.stdout
    records = {r["accession"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert set(records) == {"batch/B7", "batch/B8.jpg"}
    both = records["batch/B7"]
    assert [(Path(i["source"]).name, i["side"]) for i in both["images"]] == [
        ("B7_o.jpg", "obverse"),
        ("B7_r.jpg", "reverse"),
    ]
    assert both["suggestions"][0]["type"] == "2e"
    table = tmp_path / "out.csv"  # the CSV names both photos of the coin too
    assert (
        cli("identify", batch, "--home", home, "--sides-from-names", "--out", table).exit_code == 0
    )
    rows = {row["accession"]: row for row in csv.DictReader(table.open(encoding="utf-8"))}
    assert rows["batch/B7"]["images"] == (
        f"obverse: {batch / 'B7_o.jpg'} | reverse: {batch / 'B7_r.jpg'}"
    )
    assert rows["batch/B8.jpg"]["images"] == f"unknown: {batch / 'B8.jpg'}"
