"""Ancient coins end to end (``examples/ans-roman``: six RIC, RPC and RRC types, three ANS coins
each, both sides): a Nomisma manifest in, suggestions with partial attributions, a reviewer's
partial attribution, and the Nomisma fields and URIs out again."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import pytest
import rdflib
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from ancient import SAMPLE, sample_rows, split_sample
from coinlens.api import create_app
from coinlens.catalog import CoinType, Home, Specimen
from coinlens.cli.app import app
from reviewable import sign_in

PASSWORD = "correct horse battery"


@pytest.fixture
def ancient(cli, home: Path, tmp_path: Path) -> dict:
    """Two coins of each type catalogued from the manifest; the third photographed as a backlog
    batch (``<accession>_obv.jpg``, ``_rev.jpg``) and identified."""
    sample = split_sample(tmp_path)
    ingested = cli("ingest", sample.manifest, "--home", home, "--json")
    assert ingested.exit_code == 0, ingested.stderr
    assert json.loads(ingested.stdout)["ingested"] == 24
    out = tmp_path / "results.jsonl"
    found = cli("identify", sample.backlog, "--sides-from-names", "--home", home, "--out", out)
    assert found.exit_code == 0, found.stderr
    runner = CliRunner()
    for name, role in (("rita", "reviewer"), ("vic", "viewer")):
        added = runner.invoke(
            app,
            ["user", "add", name, "--role", role, "--password-stdin", "--home", str(home)],
            input=PASSWORD + "\n",
        )
        assert added.exit_code == 0, added.stderr
    tokens = {n: cli("token", "create", n, "--home", home).stdout.strip() for n in ("rita", "vic")}
    records = [json.loads(line) for line in out.read_text().splitlines()]
    return {
        "home": home,
        "records": records,
        "truth": sample.truth,
        "tokens": tokens,
        "batch": sample.backlog,
    }


def test_a_nomisma_manifest_is_catalogued_with_its_concepts_and_lots(ancient) -> None:
    with Home.open(ancient["home"]) as opened, opened.catalog.reader() as session:
        alexandria = session.scalar(
            select(CoinType).where(CoinType.reference == "RIC VIII Alexandria 12")
        )
        assert alexandria.uri == "http://numismatics.org/ocre/id/ric.8.alex.12"
        assert alexandria.mint_uri == "http://nomisma.org/id/alexandreia_egypt"
        assert alexandria.material_uri == "http://nomisma.org/id/billon"
        coin = session.scalars(select(Specimen).where(Specimen.type_id == alexandria.id)).first()
        assert sorted(i.side for i in coin.images) == ["obverse", "reverse"]
        assert json.loads(coin.notes)["lot"]  # a column the importer does not know is kept


def test_backlog_coins_get_suggestions_with_partial_attributions(
    cli, ancient, tmp_path: Path
) -> None:
    records = ancient["records"]
    assert len(records) == 6  # one per coin: both sides matched together
    for record in records:
        assert {i["side"] for i in record["images"]} == {"obverse", "reverse"}
        levels = {p["level"]: p for p in record["partial_attribution"]}
        assert "series" in levels and "mint" in levels
        top = record["suggestions"][0]["score"]
        for level in levels.values():
            assert top - 1e-4 <= level["confidence"] <= 1.0  # a level is never less sure
    # the CSV of the same results carries each level and its confidence
    out = tmp_path / "results.csv"
    again = cli("identify", ancient["batch"], "--sides-from-names", "--home", ancient["home"],
                "--out", out)  # fmt: skip
    assert again.exit_code == 0, again.stderr
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert len(rows) == 6
    for row, record in zip(rows, records, strict=True):
        for level in record["partial_attribution"]:
            assert row[level["level"]] == level["value"]
            assert float(row[f"{level['level']}_confidence"]) == pytest.approx(
                level["confidence"], abs=1e-4
            )


def test_a_reviewer_keeps_a_partial_attribution_and_the_coin_stays_in_review(ancient) -> None:
    home = Home.open(ancient["home"])
    auth = {n: {"Authorization": f"Bearer {t}"} for n, t in ancient["tokens"].items()}
    with TestClient(create_app(home), base_url="http://127.0.0.1") as client:
        record = ancient["records"][0]
        url = f"/api/v1/specimens/{record['specimen_id']}"
        coin = client.get(url, headers=auth["vic"]).json()
        levels = {p["level"]: p for p in coin["partial_attribution"]}
        assert set(levels) <= {"series", "authority", "mint", "denomination"}
        for level in levels.values():
            assert set(level) == {"level", "value", "uri", "confidence", "types"}
        mint = levels["mint"]["value"]
        body = {"action": "partial", "attribution": {"mint": mint}, "version": coin["version"]}
        refused = [
            ({**body, "attribution": {"officina": "A"}}, "rita", 400),
            ({**body, "attribution": {}}, "rita", 400),
            (body, "vic", 403),
        ]
        for refused_body, who, status in refused:
            answer = client.post(f"{url}/review", json=refused_body, headers=auth[who])
            assert answer.status_code == status, answer.text
        kept = client.post(f"{url}/review", json=body, headers=auth["rita"])
        assert kept.status_code == 200, kept.text
        assert kept.json()["attribution"] == {"mint": mint}
        after = client.get(url, headers=auth["vic"]).json()
        assert after["status"] == "backlog" and after["attribution"] == {"mint": mint}
        assert after["history"][-1]["action"] == "partial"
        queue = client.get("/api/v1/queue", headers=auth["vic"]).json()["items"]
        assert record["specimen_id"] in [item["id"] for item in queue]  # still to review
        exported = client.get("/api/v1/export?format=csv&status=all", headers=auth["vic"])
        row = next(
            r
            for r in csv.DictReader(io.StringIO(exported.text))
            if r["accession"] == record["accession"]
        )
        assert row["attributed_mint"] == mint and row["type_reference"] == ""
        # undone: the coin loses the partial attribution again
        undone = client.post(
            f"/api/v1/reviews/{kept.json()['review_id']}/undo", json={}, headers=auth["rita"]
        )
        assert undone.status_code == 200, undone.text
        assert client.get(url, headers=auth["vic"]).json()["attribution"] is None
        # kept again, then the exact type accepted: the type supersedes it
        coin = client.get(url, headers=auth["vic"]).json()
        again = client.post(
            f"{url}/review", json={**body, "version": coin["version"]}, headers=auth["rita"]
        )
        truth = ancient["truth"][record["accession"]]["type_reference"]
        accepted = client.post(
            f"{url}/review",
            json={"action": "correct", "type": truth, "version": again.json()["version"]},
            headers=auth["rita"],
        )
        assert accepted.status_code == 200, accepted.text
        final = client.get(url, headers=auth["vic"]).json()
        assert (final["status"], final["attribution"]) == ("catalogued", None)
    home.close()


def test_export_round_trips_the_nomisma_fields_and_uris(cli, ancient, tmp_path: Path) -> None:
    home = ancient["home"]
    base = "https://coins.example.org"
    out = tmp_path / "records.csv"
    result = cli("export", "--format", "csv", "--out", out, "--home", home, "--base-url", base)
    assert result.exit_code == 0, result.stderr
    rows = {r["accession"]: r for r in csv.DictReader(out.open(encoding="utf-8"))}
    manifest = {r["accession"]: r for r in sample_rows()}
    assert len(rows) == 12
    for accession, row in rows.items():
        given = manifest[accession]
        assert row["type_uri"] == given["type_uri"]
        for name in ("authority", "mint", "denomination", "material", "date_from", "date_to",
                     "authority_uri", "mint_uri", "denomination_uri", "material_uri",
                     "weight_g", "diameter_mm", "die_axis"):  # fmt: skip
            if given[name]:
                assert float(row[name]) == float(given[name]) if name in (
                    "weight_g", "diameter_mm"
                ) else row[name] == given[name], (accession, name)  # fmt: skip
        assert json.loads(row["fields"])["lot"] == given["lot"]

    jsonld = tmp_path / "records.jsonld"
    result = cli("export", "--format", "jsonld", "--out", jsonld, "--home", home, "--base-url",
                 base)  # fmt: skip
    assert result.exit_code == 0, result.stderr
    graph = rdflib.Graph().parse(jsonld, format="json-ld")
    found = list(
        graph.query(
            """
            PREFIX nmo: <http://nomisma.org/ontology#>
            PREFIX dcterms: <http://purl.org/dc/terms/>
            SELECT ?coin ?type ?mint ?authority ?denomination ?material ?start ?note WHERE {
              ?coin a nmo:NumismaticObject ; nmo:hasTypeSeriesItem ?type ;
                    dcterms:description ?note .
              ?type nmo:hasMint ?mint ; nmo:hasAuthority ?authority ;
                    nmo:hasDenomination ?denomination ; nmo:hasMaterial ?material ;
                    nmo:hasStartDate ?start .
              FILTER(?type = <http://numismatics.org/ocre/id/ric.8.alex.12>)
            }
            """
        )
    )
    assert found, "the RIC VIII Alexandria 12 coins with their type's concepts"
    _, _, mint, authority, denomination, material, start, _ = found[0]
    assert str(denomination) == "http://nomisma.org/id/ae3"
    assert str(mint) == "http://nomisma.org/id/alexandreia_egypt"
    assert str(material) == "http://nomisma.org/id/billon"
    assert str(authority).startswith("http://nomisma.org/id/")
    assert str(start).lstrip("-").isdigit() and len(str(start).lstrip("-")) == 4
    assert any(str(row[-1]).startswith("lot: ") for row in found)


def _eval(cli, home: Path, references: Path, out: Path, *extra: str) -> dict:
    result = cli("eval", "--home", home, "--references", references, "--leave-one-out",
                 "--no-verify", "--json", out, *extra)  # fmt: skip
    assert result.exit_code == 0, result.stderr
    summary = json.loads(out.read_text())
    if len(summary["by_series"]) > 1:  # each series' figures printed too
        assert "by series" in result.stdout
    return summary


def test_eval_leaves_out_whole_coins_and_whole_lots(cli, tmp_path: Path) -> None:
    home = tmp_path / "home"  # eval reads no catalogue: one engine is enough
    rows = sample_rows()
    # a type known from one coin only: nothing of its type is left once its coin is left out
    solo = rows[0]["accession"]
    folder = tmp_path / "coins"
    for row in rows:
        target = folder / Path(row["image"])
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(SAMPLE / row["image"], target)
        if row["accession"] == solo:
            (folder / "solo" / "one").mkdir(parents=True, exist_ok=True)
            shutil.copy(SAMPLE / row["image"], folder / "solo" / "one" / Path(row["image"]).name)

    photos = _eval(cli, home, folder, tmp_path / "photos.json")
    assert photos["n_unanswerable"] == 0  # each side of the solo coin finds the other
    assert "per_coin" not in photos
    coins = _eval(cli, home, folder, tmp_path / "coins.json", "--sides-from-names")
    assert coins["n_unanswerable"] == 2  # its other side never serves as its reference
    assert coins["per_side"]["n_queries"] == coins["n_queries"] == 36
    assert coins["per_coin"]["n_queries"] == 18  # both sides of each coin together

    # the manifest's coins, the three RRC 535/1 coins in one lot: grouped by lot, no coin of
    # that lot is another's reference, so the type has nothing left to be found by
    lots = tmp_path / "lots" / "manifest.csv"
    shutil.copytree(SAMPLE, lots.parent)
    with lots.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(
            {**row, "lot": "L1"} if row["type_reference"] == "RRC 535/1" else row for row in rows
        )
    plain = _eval(cli, home, lots, tmp_path / "plain.json")
    assert (plain["n_unanswerable"], plain["per_coin"]["n_queries"]) == (0, 18)
    grouped = _eval(cli, home, lots, tmp_path / "grouped.json", "--group-by", "lot")
    assert grouped["group_by"] == "lot"
    assert set(grouped["by_series"]) == {"RIC IX", "RPC I"}  # the rest: all of one lot
    assert sum(row["n_queries"] for row in grouped["by_series"].values()) == grouped["n_queries"]
    assert grouped["n_unanswerable"] >= 6 and grouped["per_coin"]["n_queries"] <= 15
    for level, row in grouped["partial"].items():
        assert level in ("series", "authority", "mint", "denomination")
        assert 0 <= row["right"] <= 1 and row["n"] > 0
    missing = cli("eval", "--home", home, "--references", folder, "--leave-one-out",
                  "--group-by", "lot")  # fmt: skip
    assert missing.exit_code == 2 and "no coin has a 'lot'" in missing.stderr


def test_the_coin_page_shows_the_levels_and_keeps_the_ticked_ones(ancient) -> None:
    home = Home.open(ancient["home"])
    record = ancient["records"][1]
    with TestClient(create_app(home), base_url="http://127.0.0.1") as client:
        sign_in(client, "rita", PASSWORD)
        page = client.get(f"/specimens/{record['specimen_id']}")
        assert page.status_code == 200 and "What the suggestions agree on" in page.text
        csrf = page.text.split('name="csrf_token" value="')[1].split('"')[0]
        version = page.text.split('name="version" value="')[1].split('"')[0]
        levels = {p["level"]: p["value"] for p in record["partial_attribution"]}
        form = {
            "csrf_token": csrf,
            "version": version,
            "sure": ["series", "authority"],
            **{f"value_{level}": value for level, value in levels.items()},
        }
        kept = client.post(
            f"/specimens/{record['specimen_id']}/partial", data=form, follow_redirects=False
        )
        assert kept.status_code == 303, kept.text
        shown = client.get(kept.headers["location"])
        assert "Attributed so far" in shown.text and levels["series"] in shown.text
        nothing = client.post(
            f"/specimens/{record['specimen_id']}/partial",
            data={**form, "sure": [], "version": str(int(version) + 1)},
        )
        assert "tick the levels you are sure of" in nothing.text
    with home.catalog.reader() as session:
        coin = session.get(Specimen, record["specimen_id"])
        assert coin.attribution == {
            "series": levels["series"],
            "authority": levels["authority"],
        }
        assert coin.status == "backlog"
    home.close()


def test_training_grouped_by_lot_calibrates_without_lot_mates(cli, tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert cli("ingest", SAMPLE / "manifest.csv", "--home", home).exit_code == 0
    unknown = cli("train", "--home", home, "--epochs", "1", "--group-by", "hoard")
    assert unknown.exit_code == 2
    assert "no catalogued coin has a 'hoard'" in unknown.stderr
    trained = cli("train", "--home", home, "--epochs", "1", "--group-by", "lot", "--upright",
                  "--json")  # fmt: skip
    assert trained.exit_code == 0, trained.stderr
    summary = json.loads(trained.stdout)
    assert (summary["group_by"], summary["upright"]) == ("lot", True)
    assert 0 <= summary["photos_upright_share"] <= 1
    again = cli("train", "--home", home, "--calibrate-only", "--json")  # grouped as trained
    assert again.exit_code == 0, again.stderr
