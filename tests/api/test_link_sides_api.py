"""Two specimens that are one coin's two sides (files whose names say no side) are linked in
review: one specimen with both sides, matched again on both, its trail and accessions kept, and
ingest and identify run again over the same files add nothing twice."""

from __future__ import annotations

import csv
import io
import json

from typer.testing import CliRunner

from coinlens.cli.app import app
from reviewable import sign_in


def _specimen(site, specimen_id: int) -> dict:
    response = site.client.get(f"/api/v1/specimens/{specimen_id}", headers=site.auth("vic"))
    assert response.status_code == 200, response.text
    return response.json()


def _queue(site) -> list[dict]:
    response = site.client.get("/api/v1/queue", params={"limit": 100}, headers=site.auth("vic"))
    return response.json()["items"]


def _link(site, specimen_id: int, who: str = "rita", **body):
    return site.client.post(
        f"/api/v1/specimens/{specimen_id}/link", json=body, headers=site.auth(who)
    )


def _cli(site, *args: str) -> str:
    result = CliRunner().invoke(
        app, [*args, "--home", str(site.home.settings.home)], catch_exceptions=False
    )
    assert result.exit_code == 0, result.stderr
    return result.stdout


def _exported(site, accession: str) -> dict:
    response = site.client.get(
        "/api/v1/export", params={"format": "csv", "status": "all"}, headers=site.auth("vic")
    )
    return next(
        row for row in csv.DictReader(io.StringIO(response.text)) if row["accession"] == accession
    )


def test_two_specimens_linked_as_one_coin_are_matched_on_both_sides(site) -> None:
    first, second, third, fourth = _queue(site)[:4]
    site.client.post(  # the second coin's trail, to see it kept
        f"/api/v1/specimens/{second['id']}/review",
        json={"action": "skip", "comment": "reverse of another?"},
        headers=site.auth("rita"),
    )
    second = _specimen(site, second["id"])
    before = _specimen(site, first["id"])
    assert [i["side"] for i in before["images"]] == ["unknown"]

    linked = _link(
        site,
        first["id"],
        other=second["accession"],
        side="obverse",
        version=before["version"],
        other_version=second["version"],
    )
    assert linked.status_code == 200, linked.text
    state = linked.json()
    assert state["linked"] == second["accession"] and state["images_moved"] == 1
    assert state["sides"] == ["obverse", "reverse"] and state["matched"] is True

    after = _specimen(site, first["id"])
    assert sorted(i["side"] for i in after["images"]) == ["obverse", "reverse"]
    assert after["aliases"] == [second["accession"]]
    assert after["suggestions"] and after["decision"]  # matched again, on both sides
    actions = [(h["reviewer"], h["action"]) for h in after["history"]]
    assert actions[-2:] == [("rita", "skip"), ("rita", "link")]  # the other's trail moved too
    assert "reverse of another?" in after["history"][-2]["comment"]
    assert second["accession"] in after["history"][-1]["comment"]
    gone = site.client.get(f"/api/v1/specimens/{second['id']}", headers=site.auth("vic"))
    assert gone.status_code == 404
    # a coin with both sides now is no longer offered as another's other side
    batch = site.client.get(
        "/api/v1/specimens", params={"batch": first["batch"]}, headers=site.auth("vic")
    ).json()["items"]
    ordered = sorted(batch, key=lambda s: s["accession"])
    at = [s["id"] for s in ordered].index(first["id"])
    neighbour = ordered[at - 1] if at else ordered[at + 1]
    assert first["accession"] not in _specimen(site, neighbour["id"])["side_candidates"]
    exported = _exported(site, first["accession"])
    assert exported["reviewer"] == ""  # linking a side attributes nothing
    assert exported["obverse_image"] and exported["reverse_image"]

    # run again over the same files: the linked photo is found where it is now
    counts = json.loads(_cli(site, "status", "--json"))["specimens"]
    ingested = json.loads(_cli(site, "ingest", str(site.batch), "--status", "backlog", "--json"))
    assert ingested["new_specimens"] == 0 and ingested["failed"] == 0
    _cli(site, "identify", str(site.batch))
    assert json.loads(_cli(site, "status", "--json"))["specimens"] == counts
    again = _specimen(site, first["id"])
    assert len(again["images"]) == 2 and again["aliases"] == [second["accession"]]

    # refused, each for its reason, nothing changed
    refusals = [
        (first["id"], {"other": first["accession"], "side": "obverse"}, "rita", 400, "itself"),
        (first["id"], {"other": second["accession"], "side": "obverse"}, "rita", 400, "already"),
        (third["id"], {"other": first["accession"], "side": "obverse"}, "rita", 400, "obverse"),
        (third["id"], {"other": "no-such-coin", "side": "reverse"}, "rita", 400, "no specimen"),
        (third["id"], {"other": first["accession"], "side": "edge"}, "rita", 422, "side"),
        (third["id"], {"other": first["accession"], "side": "reverse"}, "vic", 403, ""),
        (third["id"], {"other": "x", "side": "reverse", "version": 0}, "rita", 409, "changed"),
        (
            third["id"],
            {"other": fourth["accession"], "side": "reverse", "other_version": 0},
            "rita",
            409,
            "changed",
        ),
    ]
    for specimen_id, body, who, status, reason in refusals:
        refused = _link(site, specimen_id, who, **body)
        assert refused.status_code == status, (body, refused.text)
        assert reason in refused.json()["error"]
    assert _specimen(site, first["id"])["version"] == again["version"]


def test_a_backlog_side_linked_to_a_catalogued_coin_is_catalogued_with_it(site) -> None:
    coin = _queue(site)[0]
    listed = site.client.get(
        "/api/v1/specimens", params={"status": "catalogued", "limit": 2}, headers=site.auth("vic")
    ).json()["items"]
    reference = listed[0]
    linked = _link(site, coin["id"], other=reference["accession"], side="reverse")
    assert linked.status_code == 200, linked.text
    state = linked.json()
    assert state["status"] == "catalogued" and state["type_id"] == reference["type_id"]
    assert state["references_added"] == 2 and state["matched"] is False
    assert _exported(site, coin["accession"])["reviewer"] == "rita"  # the link attributed it

    # two coins of different types are not one coin
    others = site.client.get(
        "/api/v1/specimens", params={"status": "catalogued", "limit": 100}, headers=site.auth("vic")
    ).json()["items"]
    one, another = others[1], next(s for s in others if s["type_id"] != others[1]["type_id"])
    refused = _link(site, one["id"], other=another["accession"], side="obverse")
    assert refused.status_code == 400 and "correct one first" in refused.json()["error"]


def test_the_specimen_page_links_the_other_side(site) -> None:
    first = _queue(site)[0]
    path = f"/specimens/{first['id']}"
    sign_in(site.client, "vic")
    assert 'id="link-form"' not in site.client.get(path).text  # viewers do not link

    sign_in(site.client, "rita")
    page = site.client.get(path)
    assert 'id="link-form"' in page.text
    # the coins photographed just before and after it in its batch are offered
    batch = site.client.get(
        "/api/v1/specimens", params={"batch": first["batch"]}, headers=site.auth("vic")
    ).json()["items"]
    accessions = sorted(s["accession"] for s in batch)
    at = accessions.index(first["accession"])
    candidates = _specimen(site, first["id"])["side_candidates"]
    assert candidates == accessions[max(0, at - 3) : at] + accessions[at + 1 : at + 4]
    assert f'<option value="{candidates[0]}">' in page.text
    other = candidates[0]
    csrf = page.text.split('name="csrf_token" value="')[1].split('"')[0]
    form = {"csrf_token": csrf, "version": str(first["version"]), "side": "reverse"}
    empty = site.client.post(f"{path}/link", data={**form, "other": " "})
    assert 'id="message"' in empty.text and "give the accession" in empty.text

    done = site.client.post(f"{path}/link", data={**form, "other": other})
    assert 'id="notice"' in done.text and "are this coin&#39;s obverse" in done.text
    assert 'id="aliases"' in done.text and other in done.text
    assert 'id="link-form"' not in done.text  # both sides now: nothing left to link
    forged = site.client.post(f"{path}/link", data={**form, "csrf_token": "x", "other": "y"})
    assert forged.status_code == 403
