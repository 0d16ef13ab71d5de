"""CSV manifests from collection-management systems: sides, physical data, bad rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from coinlens.catalog import CoinType, Home, Specimen
from helpers import make_image

HEADER = (
    "image,accession,side,type_reference,type_uri,authority,mint,denomination,date_from,date_to,"
    "material,weight_g,diameter_mm,die_axis,findspot\n"
)


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    folder = tmp_path / "export"
    for index in range(1, 10):
        make_image(folder / "photos" / f"{index}.jpg", seed=index)
    rows = [
        # two sides of one denarius, physical data on the first row only
        "photos/1.jpg,AN.2001.1,obverse,RRC 273/1,http://numismatics.org/crro/id/rrc-273.1,"
        "Rome,Rome,denarius,-118,-107,silver,3.92,18.5,6,Sulmona",
        "photos/2.jpg,AN.2001.1,reverse,RRC 273/1,,,,,,,,,,,",
        # a second coin of the same type, both sides in one photo
        "photos/3.jpg,AN.2001.2,both,RRC 273/1,,,,,,,,3.87,,12,",
        # a coin with no type yet: backlog
        "photos/4.jpg,AN.2001.3,obverse,,,,,,,,,4.1,,,",
        # bad rows: a weight with its unit, die axis 13, unknown side, missing file, bad year
        'photos/5.jpg,AN.2001.4,obverse,RRC 1/1,,,,,,,,"12,3g",,,',
        "photos/6.jpg,AN.2001.5,obverse,RRC 1/1,,,,,,,,3.1,,13,",
        "photos/7.jpg,AN.2001.6,top,RRC 1/1,,,,,,,,,,,",
        "photos/missing.jpg,AN.2001.7,obverse,RRC 1/1,,,,,,,,,,,",
        "photos/8.jpg,AN.2001.8,obverse,RRC 1/1,,,,,-100,-200,,,,,",
        "photos/9.jpg,AN.2001.9,obverse,RRC 1/1,numismatics.org/crro/id/rrc-1.1,,,,,,,,,,",
    ]
    path = folder / "export.csv"
    path.write_text(HEADER + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_two_sided_specimens_with_physical_data(cli, home: Path, manifest: Path) -> None:
    result = cli("ingest", manifest.parent, "--manifest", manifest, "--home", home, "--json")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["ingested"] == 4
    assert summary["rows_skipped"] == 6
    errors = [line for line in result.stderr.splitlines() if line.startswith("coinlens: error:")]
    assert errors == [
        "coinlens: error: export.csv line 6: weight_g '12,3g' is not a number "
        "(grams, e.g. 3.92); row skipped",
        "coinlens: error: export.csv line 7: die_axis '13' is out of range "
        "(clock hours 1 to 12; 0 is read as 12); row skipped",
        "coinlens: error: export.csv line 8: side 'top' is not one of obverse, reverse, both, "
        "unknown (or obv, rev); row skipped",
        "coinlens: error: export.csv line 9: image file 'photos/missing.jpg' not found; "
        "row skipped",
        "coinlens: error: export.csv line 10: date_from -100 is after date_to -200; row skipped",
        "coinlens: error: export.csv line 11: type_uri 'numismatics.org/crro/id/rrc-1.1' is not "
        "a URI (http://... or https://...); row skipped",
    ]
    with Home.open(home) as opened, opened.catalog.reader() as session:
        denarius = session.scalar(select(Specimen).where(Specimen.accession == "AN.2001.1"))
        assert sorted(image.side for image in denarius.images) == ["obverse", "reverse"]
        assert (denarius.weight_g, denarius.diameter_mm, denarius.die_axis) == (3.92, 18.5, 6)
        assert denarius.status == "catalogued"
        assert json.loads(denarius.notes) == {"findspot": "Sulmona"}
        coin_type = denarius.coin_type
        assert (coin_type.reference, coin_type.uri) == (
            "RRC 273/1",
            "http://numismatics.org/crro/id/rrc-273.1",
        )
        assert (coin_type.date_from, coin_type.date_to, coin_type.material) == (
            -118,
            -107,
            "silver",
        )
        second = session.scalar(select(Specimen).where(Specimen.accession == "AN.2001.2"))
        assert [image.side for image in second.images] == ["both"]
        assert (second.weight_g, second.die_axis, second.type_id) == (3.87, 12, coin_type.id)
        backlog = session.scalar(select(Specimen).where(Specimen.accession == "AN.2001.3"))
        assert (backlog.status, backlog.type_id) == ("backlog", None)
        refs = session.scalars(select(CoinType.reference)).all()
        assert refs == ["RRC 273/1"]  # bad rows created nothing


def test_manifest_given_as_path_and_rerun_adds_nothing(cli, home: Path, manifest: Path) -> None:
    assert cli("ingest", manifest, "--home", home).exit_code == 0
    again = cli("ingest", manifest, "--home", home, "--json")
    assert again.exit_code == 0
    summary = json.loads(again.stdout)
    assert (summary["ingested"], summary["already_present"]) == (0, 4)


def test_missing_required_column_stops(cli, home: Path, tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("image,side\nphoto.jpg,obverse\n")
    result = cli("ingest", path, "--home", home)
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"coinlens: error: {path}: missing required column(s) accession (found: image, side)"
    )


def test_semicolon_excel_export_with_bom(cli, home: Path, tmp_path: Path) -> None:
    make_image(tmp_path / "a.jpg", seed=1)
    path = tmp_path / "excel.csv"
    path.write_text("\ufeffImage;Accession;Side;Type_Reference\na.jpg;X1;obverse;2e\n", "utf-8")
    result = cli("ingest", path, "--home", home, "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["ingested"] == 1


def test_conflicting_type_for_an_accession_is_refused(cli, home: Path, tmp_path: Path) -> None:
    for seed, name in enumerate("abc"):
        make_image(tmp_path / f"{name}.jpg", seed=seed)
    path = tmp_path / "m.csv"
    path.write_text(
        "image,accession,side,type_reference\na.jpg,X1,obverse,2e\nb.jpg,X1,rev,1e\n"
        "c.jpg,X2,obv,2e\n"
    )
    result = cli("ingest", path, "--home", home, "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["ingested"] == 1  # X2; neither side of X1
    assert (
        "m.csv accession 'X1': its rows give different types: '2e' (line 2); '1e' (line 3); "
        "all its rows skipped" in result.stderr
    )
    with Home.open(home) as opened, opened.catalog.reader() as session:
        assert session.scalars(select(Specimen.accession)).all() == ["X2"]
        assert [i.side for i in session.scalars(select(Specimen)).one().images] == ["obverse"]
    # a type the catalogue already gives the coin is kept: another is refused by name
    path.write_text("image,accession,side,type_reference\nb.jpg,X2,reverse,1e\n")
    again = cli("ingest", path, "--home", home, "--json")
    assert json.loads(again.stdout)["failed"] == 1
    assert "accession 'X2' is already type '2e', not '1e'" in again.stderr


def test_paths_outside_the_csv_folder_are_refused(cli, home: Path, tmp_path: Path) -> None:
    make_image(tmp_path / "secret.jpg", seed=1)
    (tmp_path / "sub").mkdir()
    path = tmp_path / "sub" / "m.csv"
    path.write_text("image,accession,side\n../secret.jpg,X1,obverse\n/etc/passwd,X2,obverse\n")
    result = cli("ingest", path, "--home", home)
    assert result.exit_code == 2
    assert result.stderr.count("must be a path inside the CSV's folder") == 2
