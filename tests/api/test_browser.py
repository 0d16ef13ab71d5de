"""The review pages in real headless Chromium (Debian's chromium, driven by Playwright)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from ancient import split_sample
from coinlens.catalog import CoinType, Home, Review, Specimen
from helpers import free_port
from reviewable import PASSWORD, copy_home

CHROMIUM = Path(os.environ.get("COINLENS_CHROMIUM", "/usr/bin/chromium"))
ARTEFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
def server(reviewable_template, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """``coinlens serve`` on a free port over a copy of the reviewable home."""
    home = copy_home(reviewable_template, tmp_path / "home")
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "coinlens", "serve", "--home", str(home), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"coinlens serve did not start: {process.stdout.read()!r}")
            time.sleep(0.2)
        yield url, home
    finally:
        process.terminate()
        process.wait(timeout=20)


@pytest.fixture
def browser():
    if not CHROMIUM.exists():
        pytest.skip(f"Chromium not found at {CHROMIUM} (apt install chromium chromium-driver)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        yield chromium
        chromium.close()


def test_review_in_the_browser(server, browser) -> None:
    url, home = server
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(30_000)

    page.goto(f"{url}/queue")
    assert "/login" in page.url
    page.fill("input[name=name]", "rita")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}/queue")
    assert page.inner_text("[data-count=total]") == "24"
    rows = page.locator("#queue tbody tr")
    assert rows.count() == 24

    # Accept the top suggestion of the first coin by keyboard.
    first_id = int(rows.first.get_attribute("data-specimen"))
    rows.first.locator("a").click()
    page.wait_for_url(lambda current: f"/specimens/{first_id}?" in current)
    suggested = page.inner_text("#suggestions [data-rank='1'] b")
    ARTEFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTEFACTS / "specimen-page.png"), full_page=True)
    page.keyboard.press("1")
    page.wait_for_url(lambda current: f"/specimens/{first_id}?" not in current)

    # Correct the next coin through the type search.
    second_id = int(page.url.split("/specimens/")[1].split("?")[0])
    page.keyboard.press("/")
    page.keyboard.type("2")
    page.wait_for_function("document.querySelectorAll('#type-options option').length >= 3")
    options = page.eval_on_selector_all("#type-options option", "os => os.map(o => o.value)")
    assert {"20c", "2c", "2e"} <= set(options)
    page.fill("#type-search", "2e")
    page.keyboard.press("Enter")
    page.wait_for_url(lambda current: f"/specimens/{second_id}?" not in current)

    # Bulk-accept the batch's auto-accept suggestions, with the confirmation.
    page.goto(f"{url}/queue?batch=batch-a")
    page.click("#bulk-accept")
    count = int(page.inner_text("#bulk-count"))
    assert count > 0
    page.click("#confirm-bulk")
    assert f"accepted {count} coins" in page.inner_text("#bulk-result")

    with Home.open(home) as opened, opened.catalog.reader() as session:
        first = session.get(Specimen, first_id)
        assert first.status == "catalogued"
        assert session.get(CoinType, first.type_id).reference == suggested
        second = session.get(Specimen, second_id)
        assert second.status == "catalogued"
        assert session.get(CoinType, second.type_id).reference == "2e"
        actions = [r.action for r in session.scalars(select(Review).order_by(Review.id))]
        assert actions[0] == "accept" and actions[1] in {"correct", "accept"}
        assert actions[2:] == ["bulk_accept"] * count
        assert {r.reviewer for r in session.scalars(select(Review))} == {"rita"}
    page.goto(f"{url}/specimens/{second_id}")
    assert "rita" in page.inner_text("#history")


def _overlap(a: dict, b: dict) -> bool:
    return not (
        a["x"] + a["width"] <= b["x"]
        or b["x"] + b["width"] <= a["x"]
        or a["y"] + a["height"] <= b["y"]
        or b["y"] + b["height"] <= a["y"]
    )


def test_a_tray_coin_page_reads_at_any_width_and_steps_to_its_neighbours(
    server, browser, tmp_path
) -> None:
    url, home = server
    # a camera's file name in a long folder name: one word the heading cannot break at spaces
    trays = tmp_path / "drawer_14_unsorted_tray_photographs_2026_11_30"
    trays.mkdir()
    sample = Path(__file__).resolve().parents[2] / "examples/euro-coins/trays/test_test_1.jpg"
    (trays / "IMG_20261130_101500.jpg").write_bytes(sample.read_bytes())
    ingest = [sys.executable, "-m", "coinlens", "ingest", str(trays), "--status", "backlog"]
    subprocess.run([*ingest, "--home", str(home)], check=True, capture_output=True)
    with Home.open(home) as opened, opened.catalog.reader() as session:
        coins = session.scalars(
            select(Specimen.id).where(Specimen.accession.like(f"{trays.name}/%"))
        ).all()

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(30_000)
    page.goto(f"{url}/login")
    page.fill("input[name=name]", "vic")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}/")
    for width in (1280, 760, 420):
        page.set_viewport_size({"width": width, "height": 900})
        page.goto(f"{url}/specimens/{coins[0]}")
        title = page.locator("h1").bounding_box()
        suggestions = page.locator("h2").first.bounding_box()
        assert not _overlap(title, suggestions), width
        assert page.evaluate("document.documentElement.scrollWidth") <= width, width
        page.goto(f"{url}/queue?batch={trays.name}")  # the wide table scrolls within itself
        assert page.evaluate("document.documentElement.scrollWidth") <= width, width
    # on a phone the tray fills the width, and every coin's box takes a 44 px tap at least
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{url}/specimens/{coins[0]}")
    assert page.locator(".photo-boxes").bounding_box()["width"] >= 390 - 2 * 12
    taps = page.evaluate(
        "[...document.querySelectorAll('.photo-boxes a.box')].map((box) => {"
        " const after = getComputedStyle(box, '::after');"
        " return Math.min(parseFloat(after.width), parseFloat(after.height)); })"
    )
    assert taps and min(taps) >= 44, taps
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{url}/specimens/{coins[0]}")
    page.wait_for_function("document.querySelector('.photo-boxes img').naturalWidth > 0")
    assert page.locator(".photo-boxes a.box").count() == len(coins)
    page.screenshot(path=str(ARTEFACTS / "tray-coin-page.png"), full_page=True)
    neighbour = page.locator(f".photo-boxes a.box[href='/specimens/{coins[5]}']")
    neighbour.click()
    page.wait_for_url(f"{url}/specimens/{coins[5]}")
    assert page.locator(".photo-boxes a.box.current").get_attribute("href").endswith(f"/{coins[5]}")


def _sign_in(page, url: str, name: str) -> None:
    page.goto(f"{url}/login")
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}/")  # the dashboard


def _shown_id(page) -> int:
    return int(page.url.split("/specimens/")[1].split("?")[0])


def test_a_curators_work_cannot_be_lost_by_one_key(server, browser) -> None:
    url, home = server
    with Home.open(home) as opened, opened.catalog.reader() as session:
        coin = session.scalars(
            select(Specimen).where(Specimen.status == "catalogued").order_by(Specimen.id)
        ).first()
        coin_id, coin_type = coin.id, coin.type_id
        other = session.scalar(
            select(CoinType.reference).where(CoinType.id != coin_type).order_by(CoinType.id)
        )
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(30_000)
    _sign_in(page, url, "rita")

    # a catalogued coin's page ignores the quick keys
    page.goto(f"{url}/specimens/{coin_id}")
    for key in ("1", "n", "s", "a"):
        page.keyboard.press(key)
    page.wait_for_timeout(500)
    assert page.url == f"{url}/specimens/{coin_id}"
    # re-attributing asks for the type, the reason, then a confirmation
    page.click("#reattribute summary")
    page.fill("#reattribute-type", other)
    page.click("#reattribute-form button[type=submit]")  # no reason: the browser holds it back
    assert page.url == f"{url}/specimens/{coin_id}"
    page.fill("#reattribute-reason", "the numeral reads otherwise")
    page.click("#reattribute-form button[type=submit]")
    page.wait_for_selector("#confirm-reattribute")
    with Home.open(home) as opened, opened.catalog.reader() as session:
        assert session.get(Specimen, coin_id).type_id == coin_type  # not yet
    page.click("#confirm-reattribute-button")
    page.wait_for_selector("#saved")
    assert other in page.inner_text("#attribution")
    page.click("#saved button")  # undo, from the notice
    page.wait_for_selector("#notice")
    assert "undone" in page.inner_text("#notice")
    with Home.open(home) as opened, opened.catalog.reader() as session:
        assert session.get(Specimen, coin_id).type_id == coin_type
        actions = session.scalars(
            select(Review.action).where(Review.specimen_id == coin_id).order_by(Review.id)
        ).all()
        assert actions == ["reattribute", "undo"]


def test_a_filtered_queue_keeps_its_place_and_undo_brings_a_coin_back(server, browser) -> None:
    url, _ = server
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(30_000)
    _sign_in(page, url, "rita")
    page.goto(f"{url}/queue?decision=review&order=margin")
    listed = [
        int(row.get_attribute("data-specimen")) for row in page.locator("#queue tbody tr").all()
    ]
    assert len(listed) >= 4
    queue_url = page.url
    page.locator("#queue tbody tr a").first.click()
    accepted = []
    for _ in range(3):
        page.wait_for_selector("#suggestions")
        accepted.append(_shown_id(page))
        page.keyboard.press("1")
        page.wait_for_url(lambda current, last=accepted[-1]: f"/specimens/{last}?" not in current)
    assert accepted == listed[:3]
    assert _shown_id(page) == listed[3]
    assert "accept" in page.inner_text("#saved")
    page.click("#saved button")  # undo the last accept: that coin is shown again, backlog
    page.wait_for_url(lambda current: f"/specimens/{accepted[-1]}" in current)
    assert "undone" in page.inner_text("#notice")
    page.click("#back-link")
    page.wait_for_url(lambda current: current.startswith(f"{url}/queue?"))
    assert page.url.split("?")[1] == queue_url.split("?")[1].replace("&cursor=", "")
    remaining = [
        int(row.get_attribute("data-specimen")) for row in page.locator("#queue tbody tr").all()
    ]
    assert remaining[0] == accepted[-1] and not set(accepted[:2]) & set(remaining)
    page.goto(f"{url}/reviews")
    assert page.locator("#recent tbody tr").count() == 4
    assert "undone by rita" in page.inner_text("#recent")

    # the measures form: both errors at once, beside their fields
    page.goto(f"{url}/specimens/{listed[3]}")
    page.fill("#weight_g", "abc")
    page.fill("#die_axis", "13")
    page.click("#measures-form button[type=submit]")
    page.wait_for_selector("#error-weight_g")
    assert "not a number" in page.inner_text("#error-weight_g")
    assert "out of range" in page.inner_text("#error-die_axis")
    page.fill("#weight_g", "3,92")
    page.fill("#die_axis", "0")
    page.click("#measures-form button[type=submit]")
    page.wait_for_selector("#saved")
    assert page.input_value("#weight_g") == "3.92" and page.input_value("#die_axis") == "12"
    page.screenshot(path=str(ARTEFACTS / "specimen-saved-with-undo.png"), full_page=True)


def test_the_api_docs_render_with_the_network_cut(server, browser) -> None:
    url, _ = server
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(30_000)
    outside = []

    def only_here(route) -> None:
        if route.request.url.startswith(url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_here)
    page.goto(f"{url}/docs")
    page.wait_for_selector(".opblock", timeout=30_000)
    assert page.locator(".opblock").count() > 10
    assert outside == []
    page.goto(f"{url}/redoc")  # renders all the same (its footer's logo is ReDoc's own link)
    page.wait_for_selector("[data-section-id]", timeout=30_000)
    assert not [address for address in outside if not address.endswith("logo-mini.svg")]


def test_an_audit_is_drawn_and_reviewed_coin_by_coin_in_the_browser(server, browser) -> None:
    url, home = server
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(30_000)
    _sign_in(page, url, "rita")
    page.goto(f"{url}/batches/batch-a/audit")
    assert "Photographed like the calibration coins" in page.inner_text("#shift")
    page.fill("input[name=n]", "2")
    page.click("#audit-draw")
    page.wait_for_selector("#notice")
    assert "drew 2 coins" in page.inner_text("#notice")
    assert page.inner_text("[data-count=drawn]") == "2"
    page.click("#audit-next")  # the first drawn coin, held for rita
    page.wait_for_url(lambda current: "/specimens/" in current and "back=" in current)
    first = page.url.split("/specimens/")[1].split("?")[0]
    page.keyboard.press("1")  # accept: right
    page.wait_for_url(lambda current: f"/specimens/{first}?" not in current)
    assert "/specimens/" in page.url  # the second drawn coin
    page.keyboard.press("1")  # then back to the audit
    page.wait_for_url(lambda current: "/batches/batch-a/audit" in current)
    assert page.inner_text("[data-count=reviewed]") == "2"
    assert page.inner_text("[data-count=wrong]") == "0"
    assert page.locator("#audit-history").count() == 1  # the bound after each review
    ARTEFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTEFACTS / "audit-page.png"), full_page=True)
    with Home.open(home) as opened, opened.catalog.reader() as session:
        reviewed = session.scalars(select(Review.reviewer).where(Review.action == "accept")).all()
    assert reviewed == ["rita", "rita"]


def test_an_ancient_coin_keeps_the_levels_a_reviewer_is_sure_of(server, browser, tmp_path) -> None:
    """An ANS coin of the backlog: its sides, its suggestions and what they agree on (series,
    authority, mint, denomination); the reviewer ticks two levels and the coin keeps them,
    still in the queue for its exact type."""
    url, home = server
    sample = split_sample(tmp_path)
    coinlens = [sys.executable, "-m", "coinlens"]
    subprocess.run([*coinlens, "ingest", str(sample.manifest), "--home", str(home)], check=True,
                   capture_output=True)  # fmt: skip
    subprocess.run([*coinlens, "identify", str(sample.backlog), "--sides-from-names", "--home",
                    str(home)], check=True, capture_output=True)  # fmt: skip
    with Home.open(home) as opened, opened.catalog.reader() as session:
        coin = session.scalar(
            select(Specimen.id).where(Specimen.accession.like("ans-backlog/%")).limit(1)
        )
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(30_000)
    _sign_in(page, url, "rita")
    page.goto(f"{url}/specimens/{coin}")
    levels = page.eval_on_selector_all(
        "#partial-attribution tr", "rs => rs.map(r => r.dataset.level)"
    )
    assert {"series", "mint"} <= set(levels)
    ARTEFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTEFACTS / "ancient-coin-page.png"), full_page=True)
    series = page.input_value("input[name=value_series]")
    mint = page.input_value("input[name=value_mint]")
    page.check("#partial-attribution tr[data-level=series] input[name=sure]")
    page.check("#partial-attribution tr[data-level=mint] input[name=sure]")
    page.click("#partial-form button[type=submit]")
    page.wait_for_selector("#accepted-attribution")
    assert series in page.inner_text("#accepted-attribution")
    with Home.open(home) as opened, opened.catalog.reader() as session:
        kept = session.get(Specimen, coin)
        assert kept.attribution == {"series": series, "mint": mint}
        assert kept.status == "backlog"


def _cut_network(page, url: str) -> list[str]:
    """Every request outside the server is refused and recorded: the pages work offline."""
    outside: list[str] = []

    def only_here(route) -> None:
        if route.request.url.startswith((url, "data:")):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_here)
    return outside


def test_the_curators_pages_in_the_browser_with_the_network_cut(
    server, browser, reviewable_template
) -> None:
    url, _ = server
    rita = {"Authorization": f"Bearer {reviewable_template.tokens['rita']}"}
    queue = httpx.get(f"{url}/api/v1/queue", headers=rita).json()["items"]
    hostile = "<img src=x onerror=alert(1)> ' OR 1=1 --"
    renamed = httpx.post(
        f"{url}/api/v1/specimens/{queue[0]['id']}/review",
        json={
            "action": "correct",
            "type": hostile,
            "add_type": True,
            "version": queue[0]["version"],
        },
        headers=rita,
    )
    assert renamed.status_code == 200
    ARTEFACTS.mkdir(exist_ok=True)
    page = browser.new_page(viewport={"width": 1366, "height": 768})
    page.set_default_timeout(30_000)
    outside = _cut_network(page, url)
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    _sign_in(page, url, "rita")

    # the dashboard is the page after signing in
    assert page.locator("#batches [data-batch='batch-a']").count() == 1
    assert page.locator("#reviews-per-day tr[data-reviewer='rita']").count() == 1
    assert "held-out" in page.inner_text("#model")
    page.screenshot(path=str(ARTEFACTS / "dashboard.png"), full_page=True)

    # catalogue search: metacharacters are text, shown as typed, nothing runs
    page.goto(f"{url}/types")
    page.fill("#type-q", hostile)
    page.click("#type-filters button[type=submit]")
    page.wait_for_url(lambda current: "q=" in current)
    rows = page.locator("#types tbody tr")
    assert rows.count() == 1 and rows.first.locator("td b").inner_text() == hostile
    page.goto(f"{url}/specimens?status=catalogued")
    page.fill("#specimen-q", hostile)
    page.click("#specimen-filters button[type=submit]")
    page.wait_for_url(lambda current: "q=" in current)
    assert page.locator("#specimens tbody tr").count() == 1
    assert dialogs == []

    # evidence: up to 8 reference coins per type, and the compare view
    coin = next((c for c in queue[1:] if c["decision"] == "auto_accept"), queue[1])
    page.goto(f"{url}/specimens/{coin['id']}")
    first = page.locator("#suggestions [data-rank='1']")
    assert 0 < first.locator(".ref").count() <= 8
    assert "held-out coins given this confidence" in first.locator(".meaning").inner_text()
    first.locator(".ref a[href*='/compare?']").first.click()
    page.wait_for_url(lambda current: "/compare?" in current)
    page.wait_for_selector("#alignment")
    assert page.locator("#compare img").count() == 2
    page.screenshot(path=str(ARTEFACTS / "compare-view.png"), full_page=True)

    # visual search with a real photo finds its type; a PDF named .jpg gets a message
    photo = sorted(
        (Path(__file__).resolve().parents[2] / "examples/euro-coins/backlog/2e").glob("*.jpg")
    )[-1]
    page.goto(f"{url}/search")
    page.set_input_files("#photo-1", str(photo))
    page.click("#search-button")
    page.wait_for_selector("#results")
    assert page.inner_text("#search-suggestions [data-rank='1'] b") == "2e"
    page.screenshot(path=str(ARTEFACTS / "search-result.png"), full_page=True)
    page.goto(f"{url}/search")
    page.set_input_files(
        "#photo-1",
        files=[{"name": "coin.jpg", "mimeType": "image/jpeg", "buffer": b"%PDF-1.7 x" * 50}],
    )
    page.click("#search-button")
    page.wait_for_selector("#message")
    assert "not an image" in page.inner_text("#message")
    assert outside == [] and dialogs == []


def test_a_phone_shows_the_coin_and_its_first_suggestion_on_one_screen(server, browser) -> None:
    url, home = server
    with Home.open(home) as opened, opened.catalog.reader() as session:
        coin = session.scalar(
            select(Specimen.id).where(Specimen.status == "backlog").order_by(Specimen.id)
        )
    phone = browser.new_context(
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
    )
    page = phone.new_page()
    page.set_default_timeout(30_000)
    _sign_in(page, url, "rita")
    page.goto(f"{url}/specimens/{coin}")
    page.wait_for_function(
        "[...document.querySelectorAll('.coin-side img')].every(i => i.naturalWidth > 0)"
    )
    side = page.locator(".coin-side img").first.bounding_box()
    first = page.locator("#suggestions [data-rank='1']").bounding_box()
    assert side["y"] + side["height"] <= 844 and first["y"] < 844 - 60, (side, first)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    for button in page.locator("main button:visible").all():
        assert button.bounding_box()["height"] >= 44, button.inner_text()
    ARTEFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTEFACTS / "phone-coin-page.png"))
    # tables become lists that fit the screen
    for address in ("/queue", "/specimens", "/types", "/"):
        page.goto(f"{url}{address}")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390, address
    page.goto(f"{url}/queue")
    assert (
        page.evaluate("getComputedStyle(document.querySelector('#queue tbody tr')).display")
        == "block"
    )
    phone.close()


def test_a_viewer_sees_no_admin_or_write_controls_in_the_browser(server, browser) -> None:
    url, home = server
    page = browser.new_page(viewport={"width": 1366, "height": 768})
    page.set_default_timeout(30_000)
    _sign_in(page, url, "vic")
    assert page.locator("#admin-users").count() == 0
    with Home.open(home) as opened, opened.catalog.reader() as session:
        coin = session.scalar(select(Specimen.id).where(Specimen.status == "backlog"))
    page.goto(f"{url}/specimens/{coin}")
    assert page.locator("main form[method=post]").count() == 0
    response = page.goto(f"{url}/admin/users")
    assert response.status == 403
