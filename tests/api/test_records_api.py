"""Recording what a curator measures and knows: a coin's measures, a type's record, through the
API and the review pages; checked as a manifest is, audited, guarded against lost updates."""

from __future__ import annotations

import csv
import io

from reviewable import sign_in


def _specimen(site, specimen_id: int) -> dict:
    response = site.client.get(f"/api/v1/specimens/{specimen_id}", headers=site.auth("vic"))
    assert response.status_code == 200, response.text
    return response.json()


def _csrf(page_text: str) -> str:
    return page_text.split('name="csrf_token" value="')[1].split('"')[0]


def test_a_reviewer_records_a_coins_measures_and_its_trail_says_what_changed(site) -> None:
    item = site.client.get("/api/v1/queue", headers=site.auth("vic")).json()["items"][0]
    url = f"/api/v1/specimens/{item['id']}"
    before = _specimen(site, item["id"])
    assert before["weight_g"] is None and before["die_axis"] is None

    body = {"weight_g": 3.92, "diameter_mm": 19.75, "die_axis": 6, "version": before["version"]}
    saved = site.client.patch(url, json=body, headers=site.auth("rita"))
    assert saved.status_code == 200, saved.text
    state = saved.json()
    assert state["changed"] == {
        "weight_g": [None, 3.92],
        "diameter_mm": [None, 19.75],
        "die_axis": [None, 6],
    }
    assert state["version"] == before["version"] + 1
    after = _specimen(site, item["id"])
    assert (after["weight_g"], after["diameter_mm"], after["die_axis"]) == (3.92, 19.75, 6)
    assert after["status"] == before["status"]  # measuring a coin does not attribute it
    last = after["history"][-1]
    assert (last["reviewer"], last["action"]) == ("rita", "record")
    assert "weight 3.92 g (was blank)" in last["comment"] and "die axis 6 h" in last["comment"]

    # the same values again: nothing to write, no new version, no second trail entry
    again = site.client.patch(url, json={**body, "version": state["version"]},
                              headers=site.auth("rita"))  # fmt: skip
    assert again.status_code == 200 and again.json()["changed"] == {}
    assert again.json()["version"] == state["version"]
    assert len(_specimen(site, item["id"])["history"]) == len(after["history"])

    # refused, each for its reason, and nothing written
    refusals = [
        ({"weight_g": 5.0, "version": before["version"]}, "rita", 409, "changed by rita"),
        ({"weight_g": -1}, "rita", 400, "weight: out of range"),
        ({"die_axis": 13}, "rita", 400, "die axis: out of range"),
        ({"weight": 4.0}, "rita", 422, "weight"),  # a misspelt field is not ignored
        ({"weight_g": 5.0}, "vic", 403, ""),  # viewers read only
    ]
    for refused_body, who, status, reason in refusals:
        refused = site.client.patch(url, json=refused_body, headers=site.auth(who))
        assert refused.status_code == status, (refused_body, refused.text)
        assert reason in refused.json()["error"]
    missing = site.client.patch("/api/v1/specimens/999999", json={}, headers=site.auth("rita"))
    assert missing.status_code == 404
    assert _specimen(site, item["id"])["weight_g"] == 3.92

    cleared = site.client.patch(url, json={"die_axis": None}, headers=site.auth("rita")).json()
    assert cleared["changed"] == {"die_axis": [6, None]} and cleared["weight_g"] == 3.92

    # the measures leave with the record
    exported = site.client.get(
        "/api/v1/export", params={"format": "csv", "status": "all"}, headers=site.auth("vic")
    )
    row = next(line for line in exported.text.splitlines() if item["accession"] in line)
    assert "3.92" in row and "19.75" in row


def test_the_specimen_page_records_measures_as_typed(site) -> None:
    item = site.client.get("/api/v1/queue", headers=site.auth("vic")).json()["items"][1]
    path = f"/specimens/{item['id']}"
    sign_in(site.client, "vic")
    assert 'id="measures-form"' not in site.client.get(path).text  # viewers see values only

    sign_in(site.client, "rita")
    page = site.client.get(path)
    assert 'id="measures-form"' in page.text and 'name="die_axis"' in page.text
    form = {"csrf_token": _csrf(page.text), "version": str(item["version"]), "die_axis": "12"}
    comma = site.client.post(
        f"{path}/record", data={**form, "weight_g": "4,1g"}, follow_redirects=False
    )
    assert comma.status_code == 400  # the page again, saying why, with what was typed kept
    assert 'id="message"' in comma.text and "weight: not a number (&#39;4,1g&#39;" in comma.text
    assert 'id="error-weight_g"' in comma.text  # beside its field
    assert 'value="4,1g"' in comma.text and 'value="12"' in comma.text
    assert _specimen(site, item["id"])["die_axis"] is None  # one bad field stops the whole form

    saved = site.client.post(
        f"{path}/record", data={**form, "weight_g": "4.1", "diameter_mm": ""}
    )  # follows the redirect
    assert 'id="saved"' in saved.text and "weight 4.1 g (was blank)" in saved.text
    assert 'value="4.1"' in saved.text
    detail = _specimen(site, item["id"])
    assert (detail["weight_g"], detail["diameter_mm"], detail["die_axis"]) == (4.1, None, 12)
    forged = site.client.post(f"{path}/record", data={**form, "csrf_token": "x"})
    assert forged.status_code == 403


def test_a_curator_completes_the_record_of_a_type_added_in_review(site) -> None:
    item = site.client.get("/api/v1/queue", headers=site.auth("vic")).json()["items"][0]
    added = site.client.post(
        f"/api/v1/specimens/{item['id']}/review",
        json={"action": "correct", "type": "Monaco 2e 2001", "add_type": True},
        headers=site.auth("rita"),
    ).json()
    url = f"/api/v1/types/{added['type_id']}"
    bare = site.client.get(url, headers=site.auth("vic")).json()
    assert bare["authority"] is None and bare["history"] == []

    record = {
        "authority": "Monaco",
        "denomination": "2 euro",
        "date_from": 2001,
        "date_to": 2001,
        "material": "bimetallic",
        "uri": "https://example.org/types/monaco-2e-2001",
        "version": bare["version"],
    }
    saved = site.client.patch(url, json=record, headers=site.auth("rita"))
    assert saved.status_code == 200, saved.text
    assert saved.json()["changed"]["authority"] == [None, "Monaco"]
    detail = site.client.get(url, headers=site.auth("vic")).json()
    assert detail["denomination"] == "2 euro" and detail["date_from"] == 2001
    assert detail["reference"] == "Monaco 2e 2001" and detail["version"] == bare["version"] + 1
    (edit,) = detail["history"]
    assert edit["reviewer"] == "rita" and edit["changes"]["material"] == [None, "bimetallic"]

    refusals = [
        ({"date_from": 2005}, 400, "date_from 2005 is after date_to 2001"),
        ({"mint": "Paris", "version": bare["version"]}, 409, "changed by rita"),
        ({"reference": "Monaco 2e"}, 422, "reference"),  # the reference is the type's identity
        ({"mint": "x" * 300}, 422, "mint"),
    ]
    for body, status, reason in refusals:
        refused = site.client.patch(url, json=body, headers=site.auth("rita"))
        assert refused.status_code == status, (body, refused.text)
        assert reason in refused.json()["error"]
    assert (
        site.client.patch(url, json={"mint": "Paris"}, headers=site.auth("vic")).status_code == 403
    )
    assert (
        site.client.patch("/api/v1/types/999999", json={}, headers=site.auth("rita")).status_code
        == 404
    )
    assert site.client.get(url, headers=site.auth("vic")).json()["mint"] is None

    # the type page: the form for reviewers, with the record's history
    sign_in(site.client, "rita")
    shown = site.client.get(f"/types/{added['type_id']}")  # read-only until "edit"
    assert 'id="type-record-form"' not in shown.text and 'id="edit-type"' in shown.text
    page = site.client.get(f"/types/{added['type_id']}?edit=1")
    assert 'id="type-record-form"' in page.text and 'id="type-history"' in page.text
    form = {"csrf_token": _csrf(page.text), "version": str(detail["version"])}
    refused = site.client.post(
        f"/types/{added['type_id']}/record",
        data={**form, "date_to": "c. 2001", "mint": "Paris", "description": "Rainier III"},
    )
    assert refused.status_code == 400 and 'id="message"' in refused.text
    assert "date_to &#39;c. 2001&#39; is not a whole number" in refused.text
    assert 'value="Paris"' in refused.text and ">Rainier III</textarea>" in refused.text
    saved = site.client.post(
        f"/types/{added['type_id']}/record", data={**form, "mint": "Paris", "material": ""}
    )
    assert 'id="notice"' in saved.text and "mint Paris (was none)" in saved.text
    too_long = site.client.post(
        f"/types/{added['type_id']}/record", data={**form, "description": "x" * 4001}
    )  # refused whole, never stored cut short
    assert too_long.status_code == 400 and "description is 4001 characters long" in too_long.text
    final = site.client.get(url, headers=site.auth("vic")).json()
    assert final["mint"] == "Paris" and final["material"] is None and len(final["history"]) == 2

    # exports carry the record; the coin's reviewer stays who attributed it, not who weighed it
    weighed = site.client.patch(
        f"/api/v1/specimens/{item['id']}", json={"weight_g": 8.5}, headers=site.auth("ada")
    )
    assert weighed.status_code == 200
    exported = site.client.get("/api/v1/export", params={"format": "csv"}, headers=site.auth("vic"))
    (row,) = [
        r for r in csv.DictReader(io.StringIO(exported.text)) if r["accession"] == item["accession"]
    ]
    assert (row["type_reference"], row["mint"], row["weight_g"]) == (
        "Monaco 2e 2001",
        "Paris",
        "8.5",
    )
    assert row["type_uri"] == record["uri"] and row["reviewer"] == "rita"
