"""The curator's pages over HTTP: the dashboard, the catalogue (types and specimens), visual
search and its bad uploads, the compare view, evaluation reports, the admin pages and roles."""

from __future__ import annotations

import html
import re
from urllib.parse import parse_qs, urlsplit

from sqlalchemy import func, insert, select, text
from typer.testing import CliRunner

from coinlens.catalog import CoinType, Image, Specimen
from coinlens.cli.app import app
from helpers import png_bomb
from reviewable import SAMPLE, sign_in

SCRIPT = "<script>alert(1)</script>"
INJECTION = "' OR 1=1 --"


def _csrf(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def _count(site, model=Specimen) -> int:
    with site.home.catalog.reader() as session:
        return session.scalar(select(func.count()).select_from(model))


def _backlog(site) -> list[dict]:
    response = site.client.get("/api/v1/queue", params={"limit": 100}, headers=site.auth("vic"))
    return response.json()["items"]


def _new_type(site, specimen: dict, reference: str) -> int:
    body = {
        "action": "correct",
        "type": reference,
        "add_type": True,
        "version": specimen["version"],
    }
    response = site.client.post(
        f"/api/v1/specimens/{specimen['id']}/review", json=body, headers=site.auth("rita")
    )
    assert response.status_code == 200, response.text
    return response.json()["type_id"]


def test_catalogue_search_takes_sql_and_html_metacharacters_as_text(site) -> None:
    coins = _backlog(site)
    hostile = _new_type(site, coins[0], SCRIPT)
    quoted = _new_type(site, coins[1], INJECTION)
    noted = site.client.patch(
        f"/api/v1/specimens/{coins[2]['id']}",
        json={"notes": f"found with {SCRIPT} and {INJECTION}"},
        headers=site.auth("rita"),
    )
    assert noted.status_code == 200
    sign_in(site.client, "vic")

    page = site.client.get("/types", params={"q": SCRIPT}).text
    assert re.findall(r'data-type="(\d+)"', page) == [str(hostile)]
    assert SCRIPT not in page and html.escape(SCRIPT) in page
    page = site.client.get("/types", params={"q": INJECTION}).text  # one type, not every type
    assert re.findall(r'data-type="(\d+)"', page) == [str(quoted)]
    assert site.client.get("/types", params={"q": "100%"}).text.count("data-type=") == 0

    page = site.client.get("/specimens", params={"q": SCRIPT}).text
    found = set(re.findall(r'data-specimen="(\d+)"', page))
    assert found == {str(coins[0]["id"]), str(coins[2]["id"])}  # by its type, by its note
    assert SCRIPT not in page
    page = site.client.get("/specimens", params={"q": INJECTION}).text
    assert set(re.findall(r'data-specimen="(\d+)"', page)) == {
        str(coins[1]["id"]),
        str(coins[2]["id"]),
    }
    assert site.client.get(f"/types/{hostile}").text.count(SCRIPT) == 0


def test_types_list_counts_filters_and_sorts(site) -> None:
    sign_in(site.client, "vic")
    page = site.client.get("/types").text
    rows = re.findall(r'<tr data-type="(\d+)">(.*?)</tr>', page, re.S)
    with site.home.catalog.reader() as session:
        assert len(rows) == session.scalar(select(func.count()).select_from(CoinType))
        for type_id, row in rows:
            counts = dict(re.findall(r'data-count="(\w+)">(?:<a[^>]*>)?(\d+)', row))
            catalogued = session.scalar(
                select(func.count()).where(
                    Specimen.type_id == int(type_id), Specimen.status == "catalogued"
                )
            )
            waiting = session.scalar(
                select(func.count()).where(
                    Specimen.suggested_type_id == int(type_id), Specimen.status == "backlog"
                )
            )
            assert counts == {
                "catalogued": str(catalogued),
                "waiting": str(waiting),
                "flagged": "0",
            }
    # sorted by the coins waiting, most first
    busiest = site.client.get("/types", params={"sort": "waiting"}).text
    waiting = [int(n) for n in re.findall(r'data-count="waiting">(?:<a[^>]*>)?(\d+)', busiest)]
    assert waiting == sorted(waiting, reverse=True) and waiting[0] > 0
    # a flagged coin counts under its top suggestion; a facet filters
    coin = _backlog(site)[0]
    flagged = site.client.post(
        f"/api/v1/specimens/{coin['id']}/review",
        json={"action": "new_type", "version": coin["version"]},
        headers=site.auth("rita"),
    )
    assert flagged.status_code == 200
    type_id = coin["suggested_type_id"]
    patched = site.client.patch(
        f"/api/v1/types/{type_id}", json={"mint": "Paris"}, headers=site.auth("rita")
    )
    assert patched.status_code == 200
    only = site.client.get("/types", params={"mint": "Paris"}).text
    assert re.findall(r'data-type="(\d+)"', only) == [str(type_id)]
    assert 'data-count="flagged"><a' in only
    assert site.client.get("/types", params={"sort": "nonsense"}).status_code == 400
    assert site.client.get("/types", params={"from": "c. 1999"}).status_code == 400


def test_specimens_page_through_everything_by_accession(site) -> None:
    sign_in(site.client, "vic")
    seen: list[str] = []
    url = "/specimens"
    while url:
        page = site.client.get(url).text
        seen += re.findall(r"<b>([^<]+)</b></a></td>", page)
        found = re.search(r'id="next-page" href="([^"]+)"', page)
        url = html.unescape(found.group(1)) if found else None
    with site.home.catalog.reader() as session:
        everything = sorted(session.scalars(select(Specimen.accession)))
    assert [html.unescape(a) for a in seen] == everything
    backlog = site.client.get("/specimens", params={"status": "backlog"}).text
    assert "catalogued</td>" not in backlog and "backlog" in backlog
    assert site.client.get("/specimens", params={"status": "lost"}).status_code == 400


def test_page_1000_of_100000_specimens_is_found_by_index_not_by_counting(site) -> None:
    """Page 1,000 starts from its cursor (an accession) through the unique index, as page 1
    does: no rows skipped, no sort. Its speed against page 1: bench/review_load.py."""
    with site.home.catalog.engine.begin() as connection:
        connection.execute(
            insert(Specimen),
            [
                {
                    "accession": f"bulk/{n:06d}",
                    "status": "catalogued",
                    "batch": "bulk",
                    "version": 1,
                }
                for n in range(100_000)
            ],
        )
    sign_in(site.client, "vic")
    after = "bulk/049999"  # the last coin of page 1,000 at 50 a page
    page = site.client.get("/specimens", params={"status": "catalogued", "after": after}).text
    shown = re.findall(r"<b>(bulk/\d+)</b>", page)
    assert shown == [f"bulk/{n:06d}" for n in range(50_000, 50_050)]
    following = parse_qs(
        urlsplit(html.unescape(re.search(r'id="next-page" href="([^"]+)"', page).group(1))).query
    )
    assert following["after"] == ["bulk/050049"]
    if site.home.catalog.engine.dialect.name == "sqlite":
        with site.home.catalog.engine.connect() as connection:
            plan = " ".join(
                str(row[-1])
                for row in connection.execute(
                    text(
                        "EXPLAIN QUERY PLAN SELECT * FROM specimen WHERE status = 'catalogued' "
                        "AND accession > 'bulk/049999' ORDER BY accession LIMIT 51"
                    )
                )
            )
        assert "INDEX" in plan and "TEMP B-TREE" not in plan, plan


def test_a_type_page_shows_every_coin_paged_and_its_record_read_only_until_edit(site) -> None:
    with site.home.catalog.reader() as session:
        type_id = session.scalar(select(CoinType.id).order_by(CoinType.id))
    with site.home.catalog.engine.begin() as connection:
        connection.execute(
            insert(Specimen),
            [
                {
                    "accession": f"extra/{n:03d}",
                    "status": "catalogued",
                    "type_id": type_id,
                    "version": 1,
                }
                for n in range(30)
            ],
        )
    with site.home.catalog.reader() as session:
        expected = sorted(
            session.scalars(
                select(Specimen.accession).where(
                    Specimen.type_id == type_id, Specimen.status == "catalogued"
                )
            )
        )
    sign_in(site.client, "vic")
    shown, url, seen = [], f"/types/{type_id}", ""
    while url:
        page = site.client.get(url).text
        seen += page
        assert 'id="type-record-form"' not in page and 'id="edit-type"' not in page  # viewer
        shown += re.findall(
            r'<a class="ref" href="/specimens/\d+" data-specimen="\d+">.*?</span>\s*([^<\s]+)',
            page,
            re.S,
        )
        found = re.search(r'id="next-page" href="([^"]+)"', page)
        url = html.unescape(found.group(1)) if found else None
    assert shown == expected and len(expected) > 24
    # a coin with photos shows each of its sides
    # the coins with photos show each of their sides
    assert len(re.findall(r'alt="references/[^"]+ (?:obverse|reverse|unknown|both)"', seen)) == 6


def test_visual_search_finds_the_type_and_stores_nothing_unless_asked(site) -> None:
    photo = sorted((SAMPLE / "backlog" / "2e").glob("*.jpg"))[-1]
    before = _count(site), _count(site, Image)
    sign_in(site.client, "rita")
    form = site.client.get("/search").text
    assert 'capture="environment"' in form and 'name="store"' in form
    csrf = _csrf(form)
    result = site.client.post(
        "/search",
        data={"csrf_token": csrf},
        files=[("images", (photo.name, photo.read_bytes(), "image/jpeg"))],
    )
    assert result.status_code == 200, result.text
    first = re.search(r'data-rank="1".*?<b>([^<]+)</b>', result.text, re.S).group(1)
    assert first == "2e"
    assert re.search(
        r'class="small meaning">[^<]*held-out coins given this confidence', result.text
    )
    assert (_count(site), _count(site, Image)) == before
    # the same photo's answer as the API gives it
    api = site.client.post(
        "/api/v1/identify",
        files={"images": (photo.name, photo.read_bytes(), "image/jpeg")},
        headers=site.auth("vic"),
    ).json()
    assert api["suggestions"][0]["type"] == first

    # bad uploads: a message on the page, nothing stored
    bad = {
        "a PDF named .jpg": (b"%PDF-1.7\n" + b"0" * 2000, "not an image"),
        "a decompression bomb": (png_bomb(), "pixels"),
        "50 MB": (b"\xff\xd8" + b"0" * 50_000_000, "larger than"),
    }
    for what, (data, said) in bad.items():
        refused = site.client.post(
            "/search",
            data={"csrf_token": csrf, "store": "1"},
            files=[("images", ("coin.jpg", data, "image/jpeg"))],
        )
        assert refused.status_code in (413, 415), what
        message = re.search(r'id="message">([^<]+)', refused.text)
        assert message and said in message.group(1), (what, refused.text[:300])
        assert 'id="search-form"' in refused.text
        assert (_count(site), _count(site, Image)) == before, what

    # stored from the result, by a reviewer: a backlog coin with its suggestions
    held = re.search(r'name="held" value="([^"]+)"', result.text).group(1)
    stored = site.client.post(
        "/search/store",
        data={"csrf_token": csrf, "held": held, "batch": "counter"},
        follow_redirects=False,
    )
    assert stored.status_code == 303
    specimen_id = int(re.search(r"/specimens/(\d+)", stored.headers["location"]).group(1))
    with site.home.catalog.reader() as session:
        specimen = session.get(Specimen, specimen_id)
        assert specimen.status == "backlog" and specimen.batch == "counter"
        assert specimen.decision is not None
    again = site.client.post("/search/store", data={"csrf_token": csrf, "held": held})
    assert again.status_code == 409 and _count(site) == before[0] + 1


def test_a_viewer_sees_no_admin_or_write_controls_and_is_refused(site) -> None:
    sign_in(site.client, "vic")
    coin = _backlog(site)[0]
    pages = {
        url: site.client.get(url).text
        for url in ("/", "/types", "/specimens", f"/specimens/{coin['id']}", "/search")
    }
    for url, page in pages.items():
        assert "/admin/users" not in page and "/admin/exports" not in page, url
        assert 'action="/specimens/' not in page and 'name="store"' not in page, url
        assert 'id="edit-type"' not in page, url
    csrf = _csrf(pages["/"])
    for url in ("/admin/users", "/admin/exports", "/admin/exports/iiif.zip"):
        assert site.client.get(url).status_code == 403, url
    refused = site.client.post(
        "/admin/users", data={"csrf_token": csrf, "name": "eve", "password": "x" * 12}
    )
    assert refused.status_code == 403
    assert (
        site.client.post("/search/store", data={"csrf_token": csrf, "held": "x"}).status_code == 403
    )
    photo = sorted((SAMPLE / "backlog" / "2e").glob("*.jpg"))[0]
    storing = site.client.post(
        "/search",
        data={"csrf_token": csrf, "store": "1"},
        files=[("images", (photo.name, photo.read_bytes(), "image/jpeg"))],
    )
    assert storing.status_code == 403


def test_admin_manages_users_and_tokens_from_pages(site) -> None:
    sign_in(site.client, "ada")
    site.client.follow_redirects = False
    page = site.client.get("/admin/users").text
    csrf = _csrf(page)
    added = site.client.post(
        "/admin/users",
        data={"csrf_token": csrf, "name": "nina", "password": "long enough pw", "role": "viewer"},
    )
    assert added.status_code == 303 and "added+nina" in added.headers["location"]
    short = site.client.post(
        "/admin/users", data={"csrf_token": csrf, "name": "ned", "password": "short"}
    )
    assert "message=" in short.headers["location"]
    promoted = site.client.post("/admin/users/nina", data={"csrf_token": csrf, "role": "reviewer"})
    assert promoted.status_code == 303
    made = site.client.post(
        "/admin/tokens", data={"csrf_token": csrf, "name": "nina", "label": "scanner"}
    )
    token = re.search(r"<code[^>]*>(cl_[^<]+)</code>", made.text).group(1)
    status = site.client.get("/api/v1/status", headers={"Authorization": f"Bearer {token}"})
    assert status.status_code == 200
    token_id = re.search(
        r'<tr data-token="(\d+)"><td>\d+</td><td data-label="user">nina', made.text
    ).group(1)
    site.client.post(f"/admin/tokens/{token_id}/revoke", data={"csrf_token": csrf})
    status = site.client.get("/api/v1/status", headers={"Authorization": f"Bearer {token}"})
    assert status.status_code == 401
    # disabled: neither the password nor a token signs them in
    other = site.client.post("/admin/tokens", data={"csrf_token": csrf, "name": "rita"})
    rita_token = re.search(r"<code[^>]*>(cl_[^<]+)</code>", other.text).group(1)
    site.client.post("/admin/users/rita", data={"csrf_token": csrf, "active": "no"})
    assert (
        site.client.get(
            "/api/v1/status", headers={"Authorization": f"Bearer {rita_token}"}
        ).status_code
        == 401
    )
    assert (
        "rita" in site.client.get("/admin/users").text
        and ">disabled<" in site.client.get("/admin/users").text
    )
    # the last admin stays an admin
    kept = site.client.post("/admin/users/ada", data={"csrf_token": csrf, "role": "viewer"})
    assert "last+active+admin" in kept.headers["location"]
    users = site.client.get("/api/v1/users", headers=site.auth("ada")).json()["items"]
    assert {u["name"]: (u["role"], u["active"]) for u in users}["ada"] == ("admin", True)


def test_exports_download_from_the_admin_page(site) -> None:
    import io
    import json
    import zipfile

    sign_in(site.client, "ada")
    page = site.client.get("/admin/exports").text
    links = [html.unescape(u) for u in re.findall(r'href="(/[^"]*export[^"]*)"', page)]
    assert any("format=csv" in u for u in links) and any("iiif.zip" in u for u in links)
    csv = site.client.get("/api/v1/export?format=csv&status=catalogued")
    assert csv.status_code == 200 and csv.text.startswith("accession,")
    archive = site.client.get("/admin/exports/iiif.zip?status=catalogued")
    assert archive.status_code == 200
    names = zipfile.ZipFile(io.BytesIO(archive.content)).namelist()
    catalogued = len(csv.text.strip().splitlines()) - 1
    assert "collection.json" in names and len(names) == catalogued + 1
    collection = json.loads(zipfile.ZipFile(io.BytesIO(archive.content)).read("collection.json"))
    assert len(collection["items"]) == catalogued


def test_the_dashboard_shows_batches_reviews_the_model_and_reports(site) -> None:
    coin = _backlog(site)[0]
    accepted = site.client.post(
        f"/api/v1/specimens/{coin['id']}/review",
        json={"action": "accept", "type_id": coin["suggested_type_id"], "version": coin["version"]},
        headers=site.auth("rita"),
    )
    assert accepted.status_code == 200
    result = CliRunner().invoke(
        app,
        [
            "eval",
            "--references",
            str(site.references),
            "--leave-one-out",
            "--home",
            str(site.home.settings.home),
        ],
    )
    assert result.exit_code == 0, result.stderr
    sign_in(site.client, "vic")
    page = site.client.get("/").text
    with site.home.catalog.reader() as session:
        rows = dict(
            session.execute(
                select(Specimen.status, func.count())
                .where(Specimen.batch == "batch-a")
                .group_by(Specimen.status)
            ).all()
        )
    card = re.search(
        r'data-batch="batch-a">(.*?)</div>\s*</div>|data-batch="batch-a">(.*?)audit', page, re.S
    ).group(0)
    assert f'data-count="catalogued">{rows.get("catalogued", 0)}<' in card
    assert re.search(r'<tr data-reviewer="rita"><td><b>rita</b></td><td[^>]*>1<', page)
    assert 'id="model"' in page and "held-out" in page
    report = re.search(r'href="(/reports/eval-[^"]+)"', page).group(1)
    shown = site.client.get(report)
    assert shown.status_code == 200 and ".confusion.png" in shown.text
    picture = re.search(r'src="(/reports/[^"]+\.png)"', shown.text).group(1)
    image = site.client.get(picture)
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    assert site.client.get(report + "/..%2F..%2Fcoinlens.db").status_code == 404
    assert site.client.get("/reports/nope").status_code == 404


def test_the_compare_view_aligns_a_reference_by_its_keypoints(site) -> None:
    sign_in(site.client, "vic")
    coin = _backlog(site)[0]
    page = site.client.get(f"/specimens/{coin['id']}").text
    links = [html.unescape(u) for u in re.findall(r'href="(/specimens/\d+/compare\?[^"]+)"', page)]
    references = re.findall(r'<div class="ref" data-reference="\d+">', page)
    assert links and 0 < len(references) <= 8 * 5
    shown = site.client.get(links[0])
    assert (
        shown.status_code == 200 and 'id="compare"' in shown.text and 'id="alignment"' in shown.text
    )
    # a photo against itself: aligned, every match agreeing
    with site.home.catalog.reader() as session:
        image = session.scalar(select(Image).where(Image.specimen_id == coin["id"]))
        own, crop_key = image.id, (image.crop or {}).get("key") or image.key
    itself = site.client.get(f"/specimens/{coin['id']}/compare", params={"reference": own}).text
    assert 'id="aligned"' in itself and "Aligned:" in itself and 'id="matches"' in itself
    assert (
        site.client.get(f"/specimens/{coin['id']}/compare", params={"reference": 10**9}).status_code
        == 404
    )
    # a stored crop that no longer decodes: a message, not a crash
    (site.home.settings.home / "store" / crop_key).write_bytes(b"not a jpeg any more")
    broken = site.client.get(f"/specimens/{coin['id']}/compare", params={"reference": own})
    assert broken.status_code == 422 and "a stored crop cannot be read" in broken.text
