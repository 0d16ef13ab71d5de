"""Exports: CSV rows, Nomisma JSON-LD (parsed with rdflib, queried with SPARQL), IIIF manifests."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import rdflib
from sqlalchemy import select, update

from coinlens.catalog import CoinType, Specimen

BASE = "https://coins.example.org"


def _enrich(site) -> int:
    """Give the 2e type a Nomisma URI, and one 2e coin physical data and a named side."""
    with site.home.catalog.session() as session:
        session.execute(
            update(CoinType)
            .where(CoinType.reference == "2e")
            .values(uri="http://nomisma.org/id/eu-2e", authority="European Union", material="ae")
        )
        specimen = session.scalar(
            select(Specimen)
            .join(CoinType, Specimen.type_id == CoinType.id)
            .where(CoinType.reference == "2e")
            .order_by(Specimen.id)
        )
        specimen.weight_g, specimen.diameter_mm, specimen.die_axis = 8.5, 25.75, 6
        specimen.images[0].side = "obverse"
        return specimen.id


def _export(cli, site, fmt: str, out: Path, *extra: str) -> str:
    result = cli(
        "export",
        "--format",
        fmt,
        "--out",
        out,
        "--home",
        site.home.settings.home,
        "--base-url",
        BASE,
        *extra,
    )
    assert result.exit_code == 0, result.stderr
    return result.stdout


def test_csv_has_one_row_per_specimen_with_what_museums_need(cli, site, tmp_path: Path) -> None:
    _enrich(site)
    item = site.client.get("/api/v1/queue", headers=site.auth("vic")).json()["items"][0]
    site.client.post(
        f"/api/v1/specimens/{item['id']}/review",
        json={"action": "correct", "type": "2e", "version": item["version"]},
        headers=site.auth("rita"),
    )
    out = tmp_path / "records.csv"
    assert "exported 49 specimens" in _export(cli, site, "csv", out)
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert len(rows) == 49 and {r["status"] for r in rows} == {"catalogued"}
    first = next(r for r in rows if r["weight_g"])
    assert first["type_uri"] == "http://nomisma.org/id/eu-2e"
    assert first["weight_g"] == "8.5" and first["die_axis"] == "6"
    assert first["obverse_image"].startswith(f"{BASE}/media/crops/")
    reviewed = next(r for r in rows if r["accession"] == item["accession"])
    assert reviewed["reviewer"] == "rita" and reviewed["reviewed_at"]
    assert reviewed["type_reference"] == "2e"
    everything = tmp_path / "all.csv"
    _export(cli, site, "csv", everything, "--status", "all")
    assert len(list(csv.DictReader(everything.open(encoding="utf-8")))) == 72
    via_api = site.client.get("/api/v1/export?format=csv", headers=site.auth("vic"))
    assert via_api.status_code == 200 and via_api.headers["content-type"].startswith("text/csv")
    assert len(list(csv.DictReader(io.StringIO(via_api.text)))) == 49


def test_jsonld_is_nomisma_rdf_that_sparql_can_query(cli, site, tmp_path: Path) -> None:
    enriched = _enrich(site)
    out = tmp_path / "records.jsonld"
    _export(cli, site, "jsonld", out)
    graph = rdflib.Graph().parse(out, format="json-ld")
    objects = list(
        graph.query(
            """
            PREFIX nmo: <http://nomisma.org/ontology#>
            SELECT ?coin ?type WHERE { ?coin a nmo:NumismaticObject ; nmo:hasTypeSeriesItem ?type }
            """
        )
    )
    assert len(objects) == 48
    weighed = list(
        graph.query(
            """
            PREFIX nmo: <http://nomisma.org/ontology#>
            PREFIX foaf: <http://xmlns.com/foaf/0.1/>
            SELECT ?coin ?weight ?diameter ?axis ?picture WHERE {
              ?coin nmo:hasTypeSeriesItem <http://nomisma.org/id/eu-2e> ;
                    nmo:hasWeight ?weight ; nmo:hasDiameter ?diameter ; nmo:hasAxis ?axis ;
                    nmo:hasObverse ?side . ?side foaf:depiction ?picture }
            """
        )
    )
    assert len(weighed) == 1
    coin, weight, diameter, axis, picture = weighed[0]
    assert str(coin) == f"{BASE}/specimens/{enriched}"
    assert float(weight.toPython()) == 8.5 and float(diameter.toPython()) == 25.75
    assert int(axis.toPython()) == 6 and str(picture).startswith(f"{BASE}/media/crops/")
    labels = dict(
        graph.query(
            """
            PREFIX nmo: <http://nomisma.org/ontology#>
            PREFIX skos: <http://www.w3.org/2004/02/skos/core#>
            SELECT ?type ?label WHERE { ?type a nmo:TypeSeriesItem ; skos:prefLabel ?label }
            """
        )
    )
    assert len(labels) == 8 and str(labels[rdflib.URIRef("http://nomisma.org/id/eu-2e")]) == "2e"
    via_api = site.client.get("/api/v1/export?format=jsonld", headers=site.auth("vic"))
    assert len(rdflib.Graph().parse(data=via_api.text, format="json-ld")) == len(graph)


REQUIRED = {
    "Manifest": {"id", "type", "label", "items"},
    "Canvas": {"id", "type", "width", "height", "items"},
    "AnnotationPage": {"id", "type", "items"},
    "Annotation": {"id", "type", "motivation", "target", "body"},
    "Collection": {"id", "type", "label", "items"},
}


def _check_language_map(value) -> None:
    assert isinstance(value, dict) and value
    for language, strings in value.items():
        assert isinstance(language, str) and isinstance(strings, list) and strings


def test_iiif_manifests_follow_presentation_3(cli, site, tmp_path: Path) -> None:
    enriched = _enrich(site)
    out = tmp_path / "iiif"
    _export(cli, site, "iiif", out)
    collection = json.loads((out / "collection.json").read_text())
    assert collection["@context"] == "http://iiif.io/api/presentation/3/context.json"
    assert REQUIRED["Collection"] <= collection.keys() and collection["type"] == "Collection"
    assert len(collection["items"]) == 48
    for entry in collection["items"]:
        assert entry["type"] == "Manifest" and entry["id"].startswith(f"{BASE}/iiif/")
        _check_language_map(entry["label"])
        specimen_id = entry["id"].split("/")[-2]
        manifest = json.loads((out / specimen_id / "manifest.json").read_text())
        assert manifest["id"] == entry["id"]
        assert manifest["@context"] == "http://iiif.io/api/presentation/3/context.json"
        assert REQUIRED["Manifest"] <= manifest.keys() and manifest["type"] == "Manifest"
        _check_language_map(manifest["label"])
        for pair in manifest["metadata"]:
            _check_language_map(pair["label"])
            _check_language_map(pair["value"])
        assert manifest["items"]
        for canvas in manifest["items"]:
            assert REQUIRED["Canvas"] <= canvas.keys() and canvas["type"] == "Canvas"
            assert canvas["width"] > 0 and canvas["height"] > 0
            for page in canvas["items"]:
                assert REQUIRED["AnnotationPage"] <= page.keys()
                for annotation in page["items"]:
                    assert REQUIRED["Annotation"] <= annotation.keys()
                    assert annotation["motivation"] == "painting"
                    assert annotation["target"] == canvas["id"]
                    body = annotation["body"]
                    assert body["type"] == "Image" and body["format"] == "image/jpeg"
                    assert (body["width"], body["height"]) == (canvas["width"], canvas["height"])
    manifest = json.loads((out / str(enriched) / "manifest.json").read_text())
    assert manifest["items"][0]["label"] == {"en": ["obverse"]}
    # The served manifest is the same document, and its image is there at its URL.
    served = site.client.get(f"/iiif/{enriched}/manifest.json", headers=site.auth("vic")).json()
    assert served["items"][0]["width"] == manifest["items"][0]["width"]
    image_url = served["items"][0]["items"][0]["items"][0]["body"]["id"]
    key = image_url.split("/media/", 1)[1]
    from PIL import Image

    picture = Image.open(
        io.BytesIO(site.client.get(f"/media/{key}", headers=site.auth("vic")).content)
    )
    assert picture.size == (manifest["items"][0]["width"], manifest["items"][0]["height"])


def test_export_refuses_bad_arguments(cli, site, tmp_path: Path) -> None:
    home = site.home.settings.home
    bad = cli("export", "--format", "xml", "--out", tmp_path / "x", "--home", home)
    assert bad.exit_code == 2 and "--format" in bad.stderr
    folder = cli("export", "--format", "csv", "--out", tmp_path, "--home", home)
    assert folder.exit_code == 2 and "folder" in folder.stderr
    status = cli(
        "export", "--format", "csv", "--out", tmp_path / "a.csv", "--status", "x", "--home", home
    )
    assert status.exit_code == 2
    rerun = tmp_path / "again.csv"
    _export(cli, site, "csv", rerun)
    first = rerun.read_bytes()
    _export(cli, site, "csv", rerun)
    assert rerun.read_bytes() == first


def test_exports_go_straight_to_a_bucket(cli, site, s3_server, bucket: str, tmp_path: Path) -> None:
    """``--out s3://…`` uploads the same documents a local export writes (a real S3 server)."""
    home = site.home.settings.home
    local = tmp_path / "records.csv"
    _export(cli, site, "csv", local)

    def export_to(fmt: str, url: str) -> str:
        result = cli(
            "export",
            "--format",
            fmt,
            "--out",
            url,
            "--home",
            home,
            "--base-url",
            BASE,
            env=s3_server.env(),
        )
        assert result.exit_code == 0, result.stderr
        return result.stdout

    assert "exported 48 specimens" in export_to("csv", f"s3://{bucket}/exports/records.csv")
    client = s3_server.client()
    uploaded = client.get_object(Bucket=bucket, Key="exports/records.csv")["Body"].read()
    assert uploaded == local.read_bytes()

    export_to("iiif", f"s3://{bucket}/iiif")
    keys = {
        item["Key"]
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="iiif/")
        for item in page.get("Contents", [])
    }
    collection = json.loads(
        client.get_object(Bucket=bucket, Key="iiif/collection.json")["Body"].read()
    )
    assert len(collection["items"]) == 48
    assert keys == {"iiif/collection.json"} | {
        f"iiif/{entry['id'].split('/')[-2]}/manifest.json" for entry in collection["items"]
    }

    nameless = cli(
        "export", "--format", "csv", "--out", f"s3://{bucket}", "--home", home, env=s3_server.env()
    )
    assert nameless.exit_code == 2 and "name the object" in nameless.stderr
