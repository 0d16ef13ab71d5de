"""Review that cannot lose a curator's work, through the API and the pages' HTTP: catalogued
coins protected (re-attributed only on purpose), every action undoable as a new audited action,
the reviewer's queue and place kept, notes, the measures form's errors and conflicts."""

from __future__ import annotations

import csv
import io
import json
from urllib.parse import parse_qs, urlsplit

from sqlalchemy import func, select

from coinlens.catalog import CoinType, Review, Specimen
from reviewable import sign_in


def _queue(site, who: str = "vic", **params) -> dict:
    response = site.client.get("/api/v1/queue", params=params, headers=site.auth(who))
    assert response.status_code == 200, response.text
    return response.json()


def _specimen(site, specimen_id: int) -> dict:
    response = site.client.get(f"/api/v1/specimens/{specimen_id}", headers=site.auth("vic"))
    assert response.status_code == 200, response.text
    return response.json()


def _review(site, specimen_id: int, who: str = "rita", **body):
    return site.client.post(
        f"/api/v1/specimens/{specimen_id}/review", json=body, headers=site.auth(who)
    )


def _undo(site, review_id: int, who: str = "rita"):
    return site.client.post(f"/api/v1/reviews/{review_id}/undo", headers=site.auth(who))


def _types(site) -> dict[str, int]:
    items = site.client.get("/api/v1/types?limit=50", headers=site.auth("vic")).json()["items"]
    return {t["reference"]: t["id"] for t in items}


def _catalogued(site) -> dict:
    listing = site.client.get(
        "/api/v1/specimens?status=catalogued&limit=1", headers=site.auth("vic")
    ).json()
    return _specimen(site, listing["items"][0]["id"])


def _identify_own_photo(site, specimen_id: int) -> dict:
    with site.home.catalog.reader() as session:
        key = session.get(Specimen, specimen_id).images[0].key
    response = site.client.post(
        "/api/v1/identify",
        files={"images": ("coin.jpg", site.home.store.get(key), "image/jpeg")},
        headers=site.auth("vic"),
    )
    assert response.status_code == 200, response.text
    return response.json()


def _csrf(page_text: str) -> str:
    return page_text.split('name="csrf_token" value="')[1].split('"')[0]


def test_a_catalogued_coin_changes_type_only_by_a_deliberate_reattribution(site) -> None:
    coin = _catalogued(site)
    other = next(t for ref, t in _types(site).items() if ref != coin["type"]["reference"])
    for action in ("accept", "correct", "new_type", "skip"):
        refused = _review(site, coin["id"], action=action, type_id=other, version=coin["version"])
        assert refused.status_code == 409, (action, refused.text)
        assert "catalogued" in refused.json()["error"] and "re-attribute" in refused.json()["error"]
    no_reason = _review(site, coin["id"], action="reattribute", type_id=other, comment="  ")
    assert no_reason.status_code == 400 and "reason" in no_reason.json()["error"]
    unchanged = _specimen(site, coin["id"])
    assert (unchanged["type_id"], unchanged["status"], unchanged["version"]) == (
        coin["type_id"],
        "catalogued",
        coin["version"],
    )
    assert unchanged["history"] == []

    done = _review(
        site,
        coin["id"],
        action="reattribute",
        type_id=other,
        comment="the numeral reads 10",
        version=coin["version"],
    )
    assert done.status_code == 200, done.text
    state = done.json()
    assert state["status"] == "catalogued" and state["type_id"] == other
    assert state["review_id"] and state["references_added"] >= 1
    (entry,) = _specimen(site, coin["id"])["history"]
    assert (entry["action"], entry["comment"]) == ("reattribute", "the numeral reads 10")
    # a backlog coin is not re-attributed: it is accepted or corrected
    backlog = _queue(site)["items"][0]
    wrong = _review(site, backlog["id"], action="reattribute", type_id=other, comment="x")
    assert wrong.status_code == 400 and "accept or correct" in wrong.json()["error"]

    # the page: no quick keys or one-click buttons, the re-attribute form instead; a forged
    # one-click form is refused and changes nothing
    sign_in(site.client, "rita")
    page = site.client.get(f"/specimens/{coin['id']}")
    assert "data-key=" not in page.text and 'id="reattribute-form"' in page.text
    forged = site.client.post(
        f"/specimens/{coin['id']}/review",
        data={"csrf_token": _csrf(page.text), "version": str(state["version"]),
              "action": "new_type"},
    )  # fmt: skip
    assert 'id="message"' in forged.text and "re-attribute" in forged.text
    assert _specimen(site, coin["id"])["status"] == "catalogued"


def test_the_reattribute_page_asks_for_a_reason_and_a_confirmation(site) -> None:
    coin = _catalogued(site)
    target = next(ref for ref in _types(site) if ref != coin["type"]["reference"])
    sign_in(site.client, "rita")
    page = site.client.get(f"/specimens/{coin['id']}")
    form = {
        "csrf_token": _csrf(page.text),
        "version": str(coin["version"]),
        "type_reference": target,
        "comment": "die link with AN.7",
    }
    asked = site.client.post(f"/specimens/{coin['id']}/reattribute", data=form)
    assert 'id="confirm-reattribute"' in asked.text and target in asked.text
    assert _specimen(site, coin["id"])["type"]["reference"] == coin["type"]["reference"]
    no_reason = site.client.post(
        f"/specimens/{coin['id']}/reattribute", data={**form, "comment": ""}
    )
    assert "give the reason" in no_reason.text
    confirmed = site.client.post(
        f"/specimens/{coin['id']}/reattribute", data={**form, "confirmed": "true"}
    )
    assert 'id="saved"' in confirmed.text and "Undo" in confirmed.text
    after = _specimen(site, coin["id"])
    assert after["type"]["reference"] == target
    assert after["history"][-1]["comment"] == "die link with AN.7"


def test_undo_restores_type_status_and_references_and_is_itself_in_the_trail(site) -> None:
    item = _queue(site, decision="review")["items"][0]
    before = _specimen(site, item["id"])
    other = next(
        ref for ref, type_id in _types(site).items() if type_id != item["suggested_type_id"]
    )
    accepted = _review(site, item["id"], action="accept", type=other, version=item["version"])
    assert accepted.status_code == 200, accepted.text
    review_id = accepted.json()["review_id"]
    assert (
        _identify_own_photo(site, item["id"])["suggestions"][0]["evidence"][0]["specimen_id"]
        == item["id"]
    )

    undone = _undo(site, review_id)
    assert undone.status_code == 200, undone.text
    state = undone.json()
    assert (state["status"], state["type_id"]) == ("backlog", None)
    assert state["undid"] == review_id and state["action"] == "undo"
    after = _specimen(site, item["id"])
    assert (after["decision"], after["suggested_type_id"]) == (
        before["decision"],
        before["suggested_type_id"],
    )
    assert [s["type_id"] for s in after["suggestions"]] == [
        s["type_id"] for s in before["suggestions"]
    ]
    # out of the references again: its photo is matched as before, not found as itself
    again = _identify_own_photo(site, item["id"])
    assert all(e["specimen_id"] != item["id"] for s in again["suggestions"] for e in s["evidence"])
    assert item["id"] in [i["id"] for i in _queue(site, limit=100)["items"]]
    trail = after["history"]
    assert [h["action"] for h in trail] == ["correct", "undo"]
    assert trail[0]["undone_by"] == "rita" and "undid correct by rita" in trail[1]["comment"]

    twice = _undo(site, review_id)
    assert twice.status_code == 409 and "undone already" in twice.json()["error"]
    assert _undo(site, 10**6).status_code == 404
    assert _undo(site, trail[1]["review_id"]).status_code == 400  # an undo is not undone
    assert _undo(site, review_id, who="vic").status_code == 403

    mine = site.client.get("/api/v1/reviews?reviewer=me", headers=site.auth("rita")).json()
    newest, older = mine["items"][:2]
    assert (newest["action"], newest["undoable"]) == ("undo", False)
    assert (older["review_id"], older["undone_by"], older["undoable"]) == (review_id, "rita", False)
    nobody = site.client.get("/api/v1/reviews?reviewer=me", headers=site.auth("ada")).json()
    assert nobody["items"] == []


def test_an_undo_that_would_overwrite_a_later_change_is_refused_naming_who(site) -> None:
    item = _queue(site)["items"][0]
    types = _types(site)
    accepted = _review(site, item["id"], action="accept", version=item["version"]).json()
    target = next(t for t in types.values() if t != accepted["type_id"])
    changed = _review(
        site,
        item["id"],
        who="ada",
        action="reattribute",
        type_id=target,
        comment="obverse legend",
        version=accepted["version"],
    ).json()
    refused = _undo(site, accepted["review_id"])
    assert refused.status_code == 409
    assert "ada (reattribute)" in refused.json()["error"]
    assert _specimen(site, item["id"])["type_id"] == target  # nothing changed

    # a later change elsewhere on the record does not stand in the way
    assert _undo(site, changed["review_id"], who="ada").status_code == 200
    measured = site.client.patch(
        f"/api/v1/specimens/{item['id']}", json={"weight_g": 7.5}, headers=site.auth("ada")
    )
    assert measured.status_code == 200
    assert _undo(site, accepted["review_id"]).status_code == 200
    after = _specimen(site, item["id"])
    assert (after["status"], after["type_id"], after["weight_g"]) == ("backlog", None, 7.5)


def test_flag_skip_record_and_link_are_undone_too(site) -> None:
    first, second, third, fourth = _queue(site)["items"][:4]
    flagged = _review(site, first["id"], action="new_type", comment="no such mint mark").json()
    assert first["id"] in [i["id"] for i in _queue(site, status="in_review")["items"]]
    assert _undo(site, flagged["review_id"]).json()["status"] == "backlog"
    assert _specimen(site, first["id"])["decision"] == first["decision"]

    # a skipped coin waits behind the others, for the reviewer who skipped it only
    skipped = _review(site, first["id"], action="skip").json()
    mine = [i["id"] for i in _queue(site, who="rita", limit=100)["items"]]
    assert mine[-1] == first["id"] and mine[0] == second["id"]
    theirs = [i["id"] for i in _queue(site, who="ada", limit=100)["items"]]
    assert theirs[0] == first["id"]
    pages, cursor = [], None
    while True:  # paged through, the skipped part after the rest, every coin once
        page = _queue(site, who="rita", limit=5, **({"cursor": cursor} if cursor else {}))
        pages += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert pages == mine
    assert _undo(site, skipped["review_id"]).status_code == 200
    assert _queue(site, who="rita")["items"][0]["id"] == first["id"]

    url = f"/api/v1/specimens/{second['id']}"
    noted = site.client.patch(
        url, json={"weight_g": "3,92", "die_axis": 0, "notes": "scratch on the reverse"},
        headers=site.auth("rita"),
    ).json()  # fmt: skip
    detail = _specimen(site, second["id"])
    assert (detail["weight_g"], detail["die_axis"], detail["notes"]) == (
        3.92,
        12,
        "scratch on the reverse",
    )
    assert detail["history"][-1]["action"] == "record"
    assert "scratch on the reverse" in detail["history"][-1]["comment"]
    exported = site.client.get(
        "/api/v1/export", params={"format": "csv", "status": "all"}, headers=site.auth("vic")
    )
    row = next(r for r in csv.DictReader(io.StringIO(exported.text)) if r["accession"] ==
               second["accession"])  # fmt: skip
    assert row["notes"] == "scratch on the reverse" and row["weight_g"] == "3.92"
    jsonld = site.client.get(
        "/api/v1/export", params={"format": "jsonld", "status": "all"}, headers=site.auth("vic")
    ).json()
    node = next(n for n in jsonld["@graph"] if n.get("dcterms:identifier") == second["accession"])
    assert node["skos:note"] == "scratch on the reverse"
    assert _undo(site, noted["review_id"]).status_code == 200
    detail = _specimen(site, second["id"])
    assert (detail["weight_g"], detail["die_axis"], detail["notes"]) == (None, None, None)

    linked = site.client.post(
        f"/api/v1/specimens/{third['id']}/link",
        json={"other": fourth["accession"], "side": "obverse"},
        headers=site.auth("rita"),
    ).json()
    assert len(_specimen(site, third["id"])["images"]) == 2
    parted = _undo(site, linked["review_id"])
    assert parted.status_code == 200, parted.text
    assert sorted(parted.json()["specimen_ids"]) == sorted([third["id"], fourth["id"]])
    back = _specimen(site, fourth["id"])
    assert back["accession"] == fourth["accession"] and back["decision"] == fourth["decision"]
    assert [i["side"] for i in back["images"]] == ["unknown"]
    kept = _specimen(site, third["id"])
    assert [i["side"] for i in kept["images"]] == ["unknown"] and kept["aliases"] == []
    assert kept["suggested_type_id"] == third["suggested_type_id"]
    assert [h["action"] for h in kept["history"]] == ["link", "undo"]


def test_an_action_before_a_link_is_undone_only_after_the_link(site) -> None:
    first, second = _queue(site)["items"][:2]
    accepted = _review(site, first["id"], action="accept", version=first["version"]).json()
    linked = site.client.post(
        f"/api/v1/specimens/{first['id']}/link",
        json={"other": second["accession"], "side": "obverse"},
        headers=site.auth("ada"),
    ).json()
    refused = _undo(site, accepted["review_id"])
    assert refused.status_code == 409
    assert f"linked with {second['accession']}" in refused.json()["error"]
    assert "ada" in refused.json()["error"]
    assert _specimen(site, first["id"])["status"] == "catalogued"
    assert _undo(site, linked["review_id"], who="ada").status_code == 200
    assert _undo(site, accepted["review_id"]).json()["status"] == "backlog"
    assert _specimen(site, second["id"])["status"] == "backlog"


def test_a_bulk_accept_of_a_thousand_coins_is_undone_in_one_action(site) -> None:
    with site.home.catalog.session() as session:
        type_id = session.scalar(select(CoinType.id).order_by(CoinType.id))
        session.add_all(
            Specimen(
                accession=f"big/{number:04d}",
                status="backlog",
                batch="big",
                decision="auto_accept",
                suggested_type_id=type_id,
                suggestion_score=0.99,
                suggestion_margin=0.5,
            )
            for number in range(1000)
        )
    done = site.client.post(
        "/api/v1/bulk-accept",
        json={"batch": "big", "expected_count": 1000},
        headers=site.auth("rita"),
    ).json()
    assert done["accepted"] == 1000
    listed = site.client.get("/api/v1/reviews?reviewer=me", headers=site.auth("rita")).json()
    assert (listed["items"][0]["action"], listed["items"][0]["count"]) == ("bulk_accept", 1000)
    undone = _undo(site, done["review_id"])
    assert undone.status_code == 200, undone.text
    assert len(undone.json()["specimen_ids"]) == 1000
    counts = _queue(site, batch="big")["counts"]
    assert counts["auto_accept"] == 1000
    with site.home.catalog.reader() as session:
        statuses = session.execute(
            select(Specimen.status, func.count())
            .where(Specimen.batch == "big")
            .group_by(Specimen.status)
        ).all()
        assert statuses == [("backlog", 1000)]
        undos = session.scalar(
            select(func.count()).select_from(Review).where(Review.action == "undo")
        )
        assert undos == 1000


def test_the_queue_travels_with_the_reviewer(site) -> None:
    sign_in(site.client, "rita")
    listing = site.client.get("/queue?decision=review&order=margin")
    wanted = [i["id"] for i in _queue(site, decision="review", order="margin", limit=100)["items"]]
    assert len(wanted) >= 4
    link = listing.text.split('<a href="/specimens/')[1].split('"')[0]
    assert int(link.split("?")[0]) == wanted[0]
    (queue_url,) = parse_qs(urlsplit(link).query)["back"]
    assert urlsplit(queue_url).path == "/queue"
    assert {"decision": ["review"], "order": ["margin"]}.items() <= parse_qs(
        urlsplit(queue_url).query
    ).items()
    page = site.client.get(f"/specimens/{link}")
    assert f'href="{queue_url.replace("&", "&amp;")}" id="back-link"' in page.text
    seen = []
    for _ in range(3):
        specimen_id = int(urlsplit(str(page.url)).path.rsplit("/", 1)[1])
        seen.append(specimen_id)
        page = site.client.post(
            f"/specimens/{specimen_id}/review",
            data={"csrf_token": _csrf(page.text), "version": page.text.split(
                'name="version" value="')[1].split('"')[0], "action": "accept",
                  "back": queue_url},
        )  # fmt: skip
        assert parse_qs(urlsplit(str(page.url)).query)["back"] == [queue_url]
        assert 'id="saved"' in page.text  # what was saved, with its undo
    assert seen == wanted[:3]
    assert int(urlsplit(str(page.url)).path.rsplit("/", 1)[1]) == wanted[3]

    # the flagged list too: flag two, then work the flagged list
    flagged_url = "/queue?status=in_review"
    for item in _queue(site, limit=2)["items"]:
        _review(site, item["id"], action="new_type")
    flagged = [i["id"] for i in _queue(site, status="in_review")["items"]]
    page = site.client.get(f"/specimens/{flagged[0]}", params={"back": flagged_url})
    page = site.client.post(
        f"/specimens/{flagged[0]}/review",
        data={"csrf_token": _csrf(page.text), "version": page.text.split(
            'name="version" value="')[1].split('"')[0], "action": "skip", "back": flagged_url},
    )  # fmt: skip
    assert int(urlsplit(str(page.url)).path.rsplit("/", 1)[1]) == flagged[1]


def test_the_measures_form_says_every_error_beside_its_field(site) -> None:
    item = _queue(site)["items"][0]
    path = f"/specimens/{item['id']}"
    sign_in(site.client, "rita")
    page = site.client.get(path)
    form = {"csrf_token": _csrf(page.text), "version": str(item["version"])}
    refused = site.client.post(f"{path}/record", data={**form, "weight_g": "abc", "die_axis": "13"})
    assert refused.status_code == 400
    assert 'id="error-weight_g">weight: not a number' in refused.text
    assert 'id="error-die_axis">die axis: out of range' in refused.text
    assert 'value="abc"' in refused.text and 'value="13"' in refused.text
    saved = site.client.post(
        f"{path}/record", data={**form, "weight_g": "3,92", "die_axis": "0", "notes": "bent"}
    )
    assert 'id="saved"' in saved.text and "weight 3.92 g (was blank)" in saved.text
    detail = _specimen(site, item["id"])
    assert (detail["weight_g"], detail["die_axis"], detail["notes"]) == (3.92, 12, "bent")

    # another reviewer saved meanwhile: what was typed comes back beside what they saved
    site.client.patch(
        f"/api/v1/specimens/{item['id']}", json={"weight_g": 4.05}, headers=site.auth("ada")
    )
    stale = site.client.post(
        f"{path}/record",
        data={**form, "version": str(detail["version"]), "weight_g": "3.95", "die_axis": "12"},
    )
    assert stale.status_code == 409 and "changed by ada" in stale.text
    assert 'value="3.95"' in stale.text
    assert 'id="saved-weight_g">saved meanwhile: 4.05' in stale.text
    assert _specimen(site, item["id"])["weight_g"] == 4.05


def test_the_api_docs_need_no_internet(site) -> None:
    for path in ("/docs", "/redoc"):
        page = site.client.get(path)
        assert page.status_code == 200
        assert "cdn" not in page.text and "https://" not in page.text.split("<body")[0]
        for asset in page.text.split('src="')[1:]:
            url = asset.split('"')[0]
            assert url.startswith("/"), url
            assert site.client.get(url).status_code == 200
    schema = json.loads(site.client.get("/openapi.json").text)
    assert "/api/v1/reviews/{review_id}/undo" in schema["paths"]
