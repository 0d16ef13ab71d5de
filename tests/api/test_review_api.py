"""Review through the API: accept, correct, conflicts, bulk accept; references join at once."""

from __future__ import annotations

from sqlalchemy import select
from typer.testing import CliRunner

from coinlens.catalog import Review, Specimen
from coinlens.cli.app import app
from coinlens.identify.engine import catalogued_crops
from reviewable import SAMPLE, sign_in


def _queue(site, **params) -> dict:
    response = site.client.get("/api/v1/queue", params=params, headers=site.auth("vic"))
    assert response.status_code == 200, response.text
    return response.json()


def _photo(site, specimen_id: int) -> bytes:
    with site.home.catalog.reader() as session:
        specimen = session.get(Specimen, specimen_id)
        return site.home.store.get(specimen.images[0].key)


def test_the_queue_puts_the_least_certain_first_and_pages_through_everything(site) -> None:
    first = _queue(site, limit=5)
    counts = first["counts"]
    assert counts["total"] == 24
    assert counts["total"] == counts["auto_accept"] + counts["review"] + counts["possible_new_type"]
    seen, page = [], first
    while True:
        seen.extend(page["items"])
        if not page["next_cursor"]:
            break
        page = _queue(site, limit=5, cursor=page["next_cursor"])
    assert len(seen) == 24 and len({i["id"] for i in seen}) == 24
    scores = [i["score"] for i in seen]
    assert scores == sorted(scores)
    by_margin = _queue(site, order="margin", limit=50)["items"]
    assert [i["margin"] for i in by_margin] == sorted(i["margin"] for i in by_margin)
    review_only = _queue(site, decision="review")
    assert {i["decision"] for i in review_only["items"]} == {"review"}
    assert len(review_only["items"]) == counts["review"]
    assert _queue(site, batch="no-such-batch")["items"] == []
    one_type = seen[0]["suggested_type_id"]
    assert {i["suggested_type_id"] for i in _queue(site, type_id=one_type)["items"]} == {one_type}
    bad = site.client.get("/api/v1/queue?cursor=nonsense", headers=site.auth("vic"))
    assert bad.status_code == 400 and "cursor" in bad.json()["error"]


def _identify_again(site, specimen_id: int) -> dict:
    """What ``POST /api/v1/identify`` (nothing stored) suggests for a specimen's own photo."""
    response = site.client.post(
        "/api/v1/identify",
        files={"images": ("coin.jpg", _photo(site, specimen_id), "image/jpeg")},
        headers=site.auth("vic"),
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_accepting_catalogues_and_the_coin_helps_the_next_query_at_once(site) -> None:
    item = _queue(site, decision="review")["items"][0]
    other_type = next(
        t
        for t in site.client.get("/api/v1/types", headers=site.auth("vic")).json()["items"]
        if t["id"] != item["suggested_type_id"]
    )
    response = site.client.post(
        f"/api/v1/specimens/{item['id']}/review",
        json={
            "action": "accept",
            "type": other_type["reference"],
            "version": item["version"],
            "comment": "legend reads clearly",
        },
        headers=site.auth("rita"),
    )
    assert response.status_code == 200, response.text
    state = response.json()
    assert state["status"] == "catalogued" and state["type_id"] == other_type["id"]
    assert state["action"] == "correct" and state["references_added"] >= 1
    detail = site.client.get(f"/api/v1/specimens/{item['id']}", headers=site.auth("vic")).json()
    assert detail["history"][-1]["reviewer"] == "rita"
    assert detail["history"][-1]["to_type"] == other_type["reference"]
    assert detail["history"][-1]["comment"] == "legend reads clearly"
    # The same photo, asked again: its own catalogued image is now the best reference.
    again = _identify_again(site, item["id"])
    top = again["suggestions"][0]
    assert top["type"] == other_type["reference"]
    assert top["evidence"][0]["specimen_id"] == item["id"]
    # ... and the next training sees it.
    assert item["id"] in {ref.specimen_id for ref in catalogued_crops(site.home)}


def test_a_second_reviewer_gets_a_conflict_and_nothing_is_overwritten(site) -> None:
    item = _queue(site)["items"][0]
    types = site.client.get("/api/v1/types", headers=site.auth("vic")).json()["items"]
    first = {"action": "correct", "type_id": types[0]["id"], "version": item["version"]}
    second = {"action": "correct", "type_id": types[1]["id"], "version": item["version"]}
    url = f"/api/v1/specimens/{item['id']}/review"
    assert site.client.post(url, json=first, headers=site.auth("rita")).status_code == 200
    conflict = site.client.post(url, json=second, headers=site.auth("ada"))
    assert conflict.status_code == 409
    assert "changed by rita" in conflict.json()["error"]
    with site.home.catalog.reader() as session:
        specimen = session.get(Specimen, item["id"])
        assert specimen.type_id == types[0]["id"]
        assert [r.reviewer for r in session.scalars(select(Review))] == ["rita"]


def test_flag_skip_and_bad_reviews(site) -> None:
    items = _queue(site)["items"]
    url = f"/api/v1/specimens/{items[0]['id']}/review"
    flagged = site.client.post(
        url, json={"action": "new_type", "version": items[0]["version"]}, headers=site.auth("rita")
    )
    assert flagged.json()["status"] == "in_review"
    assert items[0]["id"] in [i["id"] for i in _queue(site, status="in_review")["items"]]
    assert _queue(site)["counts"]["total"] == 23
    skip = {"action": "skip", "version": items[1]["version"]}
    skipped = site.client.post(
        f"/api/v1/specimens/{items[1]['id']}/review", json=skip, headers=site.auth("rita")
    )
    assert skipped.json()["status"] == "backlog"
    unknown = {"action": "correct", "type": "RRC 999/9", "version": items[2]["version"]}
    response = site.client.post(
        f"/api/v1/specimens/{items[2]['id']}/review", json=unknown, headers=site.auth("rita")
    )
    assert response.status_code == 400 and "RRC 999/9" in response.json()["error"]
    missing = site.client.post(
        "/api/v1/specimens/999999/review", json=skip, headers=site.auth("rita")
    )
    assert missing.status_code == 404
    nonsense = site.client.post(url, json={"action": "delete"}, headers=site.auth("rita"))
    assert nonsense.status_code == 422 and "action" in nonsense.json()["error"]


def test_bulk_accept_takes_every_auto_accept_of_the_batch(site) -> None:
    counts = _queue(site, batch="batch-a")["counts"]
    assert counts["auto_accept"] > 0
    stale = site.client.post(
        "/api/v1/bulk-accept",
        json={"batch": "batch-a", "expected_count": counts["auto_accept"] + 1},
        headers=site.auth("rita"),
    )
    assert stale.status_code == 409
    done = site.client.post(
        "/api/v1/bulk-accept",
        json={"batch": "batch-a", "expected_count": counts["auto_accept"]},
        headers=site.auth("rita"),
    )
    assert done.json() == {
        "batch": "batch-a",
        "accepted": counts["auto_accept"],
        "review_id": done.json()["review_id"],
    }
    after = _queue(site, batch="batch-a")["counts"]
    assert after["auto_accept"] == 0 and after["total"] == counts["total"] - counts["auto_accept"]
    with site.home.catalog.reader() as session:
        actions = {r.action for r in session.scalars(select(Review))}
        assert actions == {"bulk_accept"}


def test_specimens_and_types_endpoints(site) -> None:
    listing = site.client.get(
        "/api/v1/specimens?status=catalogued&limit=10", headers=site.auth("vic")
    ).json()
    assert len(listing["items"]) == 10 and listing["next_after_id"] == listing["items"][-1]["id"]
    following = site.client.get(
        f"/api/v1/specimens?status=catalogued&after_id={listing['next_after_id']}&limit=100",
        headers=site.auth("vic"),
    ).json()
    assert len(following["items"]) == 38 and following["next_after_id"] is None
    types = site.client.get("/api/v1/types?q=2", headers=site.auth("vic")).json()["items"]
    assert {t["reference"] for t in types[:3]} == {"20c", "2c", "2e"}
    exact = site.client.get("/api/v1/types?q=2c", headers=site.auth("vic")).json()["items"]
    assert exact[0]["reference"] == "2c"
    one = site.client.get(f"/api/v1/types/{types[0]['id']}", headers=site.auth("vic")).json()
    assert one["catalogued_specimens"] == 6 and len(one["examples"]) == 6
    assert site.client.get("/api/v1/types/99999", headers=site.auth("vic")).status_code == 404
    assert site.client.get("/api/v1/specimens/99999", headers=site.auth("vic")).status_code == 404
    status = site.client.get("/api/v1/status", headers=site.auth("vic")).json()
    assert status["specimens"] == {"catalogued": 48, "backlog": 24, "in_review": 0}
    docs = site.client.get("/openapi.json").json()
    assert "/api/v1/identify" in docs["paths"] and "/api/v1/export" in docs["paths"]


def test_images_are_served_from_the_store(site) -> None:
    detail = site.client.get("/api/v1/specimens/1", headers=site.auth("vic")).json()
    image = detail["images"][0]
    response = site.client.get(f"/media/{image['thumbnail_key']}", headers=site.auth("vic"))
    assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg"
    assert response.content[:3] == b"\xff\xd8\xff"
    escape = site.client.get("/media/../coinlens.db", headers=site.auth("vic"))
    assert escape.status_code == 404
    assert site.client.get("/media/images/zz/none.jpg", headers=site.auth("vic")).status_code == 404
    settings_file = site.client.get("/media/%2E%2E/coinlens.toml", headers=site.auth("vic"))
    assert settings_file.status_code == 404


def test_a_tray_coin_page_shows_where_it_lies_among_its_neighbours(site, tmp_path) -> None:
    trays = tmp_path / "drawer_14_unsorted_tray_photographs_2026_11_30"
    trays.mkdir()
    photo_bytes = (SAMPLE / "trays/test_test_1.jpg").read_bytes()
    (trays / "IMG_20261130_101500.jpg").write_bytes(photo_bytes)
    home = str(site.home.settings.home)
    result = CliRunner().invoke(app, ["ingest", str(trays), "--status", "backlog", "--home", home])
    assert result.exit_code == 0, result.stderr
    with site.home.catalog.reader() as session:
        coins = session.scalars(
            select(Specimen).where(Specimen.accession.like(f"{trays.name}/%")).order_by(Specimen.id)
        ).all()
        photo = coins[0].images[0]
        boxes = {coin.id: coin.images[0].crop for coin in coins}
        width, height, key = photo.width, photo.height, photo.key
        corrected_version = coins[7].version
    assert len(coins) >= 20  # one specimen per coin on the tray
    corrected = site.client.post(
        f"/api/v1/specimens/{coins[7].id}/review",
        json={"action": "correct", "type": "1c", "version": corrected_version},
        headers=site.auth("rita"),
    )
    assert corrected.status_code == 200, corrected.text

    # the API: every coin cut from the photo, with its box, this one marked
    detail = site.client.get(f"/api/v1/specimens/{coins[3].id}", headers=site.auth("vic")).json()
    in_photo = detail["images"][0]["in_photo"]
    assert in_photo["viewable"] is True
    assert {c["specimen_id"] for c in in_photo["coins"]} == set(boxes)
    assert [c["specimen_id"] for c in in_photo["coins"] if c["current"]] == [coins[3].id]
    states = {c["specimen_id"]: c["state"] for c in in_photo["coins"]}
    assert states.pop(coins[7].id) == "catalogued" and set(states.values()) == {"backlog"}

    # the page: the whole photo, a link from every box to its coin, this coin's box highlighted
    sign_in(site.client, "rita")
    page = site.client.get(f"/specimens/{coins[3].id}").text
    assert f'src="/media/{key}"' in page
    # outlined by what is left to do: the corrected coin catalogued, the rest waiting
    assert page.count('class="box ') == len(coins) and page.count('current"') == 1
    assert page.count('class="box catalogued"') == 1
    assert f'href="/specimens/{coins[7].id}" class="box catalogued"' in page
    current = page.split('class="box backlog current"')[1].split(">")[0]
    box = boxes[coins[3].id]
    assert f"left: {100 * box['x'] / width:.2f}%" in current
    assert f"top: {100 * box['y'] / height:.2f}%" in current
    for coin in coins:
        assert f'href="/specimens/{coin.id}" class="box' in page
    whole = site.client.get(f"/media/{key}")
    assert whole.status_code == 200 and whole.content == photo_bytes
    # a coin photographed alone has no such picture
    single = site.client.get("/specimens/1").text
    assert 'class="photo-boxes"' not in single


def test_a_type_says_how_many_backlog_coins_wait_with_it_as_their_top_suggestion(site) -> None:
    queue = _queue(site, limit=100)
    by_type: dict[str, list[str]] = {}
    for item in queue["items"]:
        by_type.setdefault(item["suggested_type"], []).append(item["decision"])
    types = site.client.get("/api/v1/types?limit=100", headers=site.auth("vic")).json()["items"]
    waiting_total = 0
    for coin_type in types:
        one = site.client.get(f"/api/v1/types/{coin_type['id']}", headers=site.auth("vic")).json()
        waiting = one["suggested_in_backlog"]
        decisions = by_type.get(coin_type["reference"], [])
        assert waiting["total"] == len(decisions)
        for decision in ("auto_accept", "review", "possible_new_type"):
            assert waiting[decision] == decisions.count(decision)
        waiting_total += waiting["total"]
    assert waiting_total == queue["counts"]["total"] == 24
    busiest = max(types, key=lambda t: len(by_type.get(t["reference"], [])))
    sign_in(site.client, "vic")
    page = site.client.get(f"/types/{busiest['id']}").text
    total = len(by_type[busiest["reference"]])
    assert f"<b>{total}</b> backlog coin" in page
    assert f'href="/queue?type={busiest["reference"]}"' in page


def test_a_type_guarded_against_lookalike_new_types_says_so(site) -> None:
    """A trained model's calibration raised the auto-accept floor of 50 cent (coins of missing
    types were drawn to it); the type page and the API say what a coin needs there."""
    from coinlens.catalog import ModelVersion

    types = site.client.get("/api/v1/types?limit=100", headers=site.auth("vic")).json()["items"]
    by_reference = {t["reference"]: t["id"] for t in types}
    calibration = {"familiar_similarity": 0.709, "type_floors": {str(by_reference["50c"]): 0.8326}}
    with site.home.catalog.session() as session:
        session.add(
            ModelVersion(
                backbone="efficientnet-lite0",
                metrics={"calibration": calibration},
                artefacts={"weights": "models/trained.pt"},  # a version trained after identify ran
            )
        )
    guarded = f"/api/v1/types/{by_reference['50c']}"
    floor = site.client.get(guarded, headers=site.auth("vic")).json()["auto_accept_floor"]
    assert floor["similarity"] == 0.833 and floor["common"] == 0.709
    other = site.client.get(f"/api/v1/types/{by_reference['5c']}", headers=site.auth("vic"))
    assert other.json()["auto_accept_floor"] is None
    sign_in(site.client, "vic")
    page = site.client.get(f"/types/{by_reference['50c']}").text
    assert "only at similarity 0.833 or more" in page and "(other types: 0.709)" in page
    assert 'id="auto-accept-floor"' not in site.client.get(f"/types/{by_reference['5c']}").text


def test_the_queue_says_why_each_coin_got_its_decision(site) -> None:
    items = _queue(site, limit=100)["items"]
    assert items and all(item["decision_reason"] for item in items)
    for item in items[:5]:
        detail = site.client.get(f"/api/v1/specimens/{item['id']}", headers=site.auth("vic"))
        assert item["decision_reason"] == detail.json()["decision_reason"]
    sign_in(site.client, "vic")
    page = site.client.get("/queue").text
    assert f'title="{items[0]["decision_reason"]}"' in page.replace("&#39;", "'")


def test_a_flagged_coin_becomes_the_first_reference_of_a_type_the_reviewer_adds(site) -> None:
    items = _queue(site)["items"]
    coin, other = items[0], items[1]
    url = f"/api/v1/specimens/{coin['id']}/review"
    flagged = site.client.post(
        url, json={"action": "new_type", "version": coin["version"]}, headers=site.auth("rita")
    ).json()
    assert flagged["status"] == "in_review"

    def type_named(reference: str) -> list[dict]:
        found = site.client.get("/api/v1/types", params={"q": reference}, headers=site.auth("vic"))
        return [t for t in found.json()["items"] if t["reference"] == reference]

    unknown = {"action": "correct", "type": "Monaco 2e 2001", "version": flagged["version"]}
    refused = site.client.post(url, json=unknown, headers=site.auth("rita"))
    assert refused.status_code == 400 and "add_type" in refused.json()["error"]
    stale = {**unknown, "add_type": True, "version": coin["version"]}  # before the flag
    assert site.client.post(url, json=stale, headers=site.auth("rita")).status_code == 409
    wrong = {"action": "accept", "type": "Monaco 2e 2001", "add_type": True}
    assert site.client.post(url, json=wrong, headers=site.auth("rita")).status_code == 400
    slip = {**unknown, "type": "2E", "add_type": True}  # the catalogue has "2e"
    refused = site.client.post(url, json=slip, headers=site.auth("rita"))
    assert refused.status_code == 400 and "'2e'" in refused.json()["error"]
    assert type_named("Monaco 2e 2001") == [] and type_named("2E") == []  # nothing added

    added = site.client.post(url, json={**unknown, "add_type": True}, headers=site.auth("rita"))
    assert added.status_code == 200, added.text
    state = added.json()
    (new_type,) = type_named("Monaco 2e 2001")
    assert state["status"] == "catalogued" and state["type_id"] == new_type["id"]
    assert state["references_added"] >= 1
    detail = site.client.get(f"/api/v1/specimens/{coin['id']}", headers=site.auth("vic")).json()
    assert detail["history"][-1]["to_type"] == "Monaco 2e 2001"
    # Recognisable at once: the coin's photo is the new type's reference, no training needed.
    assert _identify_again(site, coin["id"])["suggestions"][0]["type"] == "Monaco 2e 2001"

    # The review page's form: a second coin to the now existing type, by its reference, with the
    # box ticked: the type is used as it is, not added twice.
    sign_in(site.client, "rita")
    page = site.client.get(f"/specimens/{other['id']}")
    assert 'name="add_type"' in page.text
    csrf = page.text.split('name="csrf_token" value="')[1].split('"')[0]
    form = {
        "action": "correct",
        "type_reference": "Monaco 2e 2001",
        "add_type": "true",
        "version": str(other["version"]),
        "csrf_token": csrf,
    }
    posted = site.client.post(f"/specimens/{other['id']}/review", data=form, follow_redirects=False)
    assert posted.status_code == 303
    assert len(type_named("Monaco 2e 2001")) == 1
    with site.home.catalog.reader() as session:
        assert session.get(Specimen, other["id"]).type_id == new_type["id"]


def test_matching_again_suggests_a_type_added_in_review(site, monkeypatch) -> None:
    from coinlens.api import rest

    coin = _queue(site)["items"][0]
    photo = _photo(site, coin["id"])
    # The same coin photographed into another batch: identified before its type existed.
    stored = site.client.post(
        "/api/v1/identify",
        files={"images": ("again.jpg", photo, "image/jpeg")},
        data={"store": "true", "batch": "second-look"},
        headers=site.auth("rita"),
    )
    assert stored.status_code == 200, stored.text
    twin = stored.json()["specimen_id"]
    added = site.client.post(
        f"/api/v1/specimens/{coin['id']}/review",
        json={"action": "correct", "type": "Monaco 2e 2001", "add_type": True},
        headers=site.auth("rita"),
    )
    assert added.status_code == 200, added.text

    def suggested(specimen_id: int) -> list[str]:
        detail = site.client.get(f"/api/v1/specimens/{specimen_id}", headers=site.auth("vic"))
        return [s["type"] for s in detail.json()["suggestions"]]

    assert "Monaco 2e 2001" not in suggested(twin)  # its suggestions predate the type
    body = {"batch": "second-look"}
    assert (
        site.client.post("/api/v1/rescore", json=body, headers=site.auth("vic")).status_code == 403
    )
    matched = site.client.post("/api/v1/rescore", json=body, headers=site.auth("rita"))
    assert matched.status_code == 200, matched.text
    assert matched.json()["matched"] == 1
    assert suggested(twin)[0] == "Monaco 2e 2001"

    monkeypatch.setattr(rest, "RESCORE_LIMIT", 5)  # the whole backlog (23 coins) is too many
    refused = site.client.post("/api/v1/rescore", json={}, headers=site.auth("rita"))
    assert refused.status_code == 400 and "--rescore" in refused.json()["error"]

    # The queue page's button does the same for the coins listed.
    sign_in(site.client, "rita")
    page = site.client.get("/queue", params={"batch": "second-look"})
    assert "Match again (1)" in page.text
    csrf = page.text.split('name="csrf_token" value="')[1].split('"')[0]
    form = {"csrf_token": csrf, "batch": "second-look", "status": "backlog"}
    posted = site.client.post("/queue/rescore", data=form, follow_redirects=False)
    assert posted.status_code == 303 and "rescored=1" in posted.headers["location"]
    assert "1 coin matched again" in site.client.get(posted.headers["location"]).text
