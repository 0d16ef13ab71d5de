"""Auto-accept per batch: a batch photographed otherwise is held until a reviewed random sample
allows it; through the CLI, the API and the pages' HTTP, on SQLite and PostgreSQL.

The home is the reviewable one (the sample's references, the untrained backbone calibrated on
them) with two more batches: ``intake``, more of the sample's own backlog (the home's
photography), and ``recast``, the same kind of coins re-photographed: cut at the rim, under a
warm lamp, with more contrast (real photos, re-processed)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from math import comb
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageEnhance
from sqlalchemy import select
from typer.testing import CliRunner

from coinlens.api import create_app
from coinlens.catalog import AuditSample, Home, Specimen
from coinlens.cli.app import app
from coinlens.identify.acceptance import lower_bound, verdict
from databases import catalogue_url_for
from helpers import make_image
from reviewable import SAMPLE, Reviewable, Site, copy_home, sign_in


def recast(source: Path, target: Path, every: int = 3) -> Path:
    """Every ``every``th backlog photo re-photographed: cut at the rim, a warm cast, contrast."""
    target.mkdir(parents=True)
    for i, path in enumerate(sorted(source.glob("*/*.jpg"))):
        if i % every:
            continue
        image = Image.open(path).convert("RGB")
        margin = int(min(image.size) * 0.14)
        image = image.crop((margin, margin, image.width - margin, image.height - margin))
        pixels = np.asarray(image.resize((320, 320), Image.LANCZOS), dtype=float)
        pixels = pixels * np.array([1.25, 1.0, 0.7]) + np.array([10.0, 0.0, 0.0])
        image = Image.fromarray(np.clip(pixels, 0, 255).astype("uint8"))
        ImageEnhance.Contrast(image).enhance(1.3).save(target / f"{path.parent.name}_{path.name}")
    return target


def intake(source: Path, target: Path, skip: int = 3) -> Path:
    """The sample's backlog without the first ``skip`` coins of each type (the home's batch-a)."""
    target.mkdir(parents=True)
    for folder in sorted(p for p in source.iterdir() if p.is_dir()):
        for path in sorted(folder.glob("*.jpg"))[skip:]:
            shutil.copy(path, target / f"{folder.name}_{path.name}")
    return target


@pytest.fixture(scope="session")
def audit_templates(
    reviewable_templates, tmp_path_factory: pytest.TempPathFactory, request
) -> Callable[[str], Reviewable]:
    built: dict[str, Reviewable] = {}

    def get(engine: str) -> Reviewable:
        if engine not in built:
            base = reviewable_templates(engine)
            root = tmp_path_factory.mktemp(f"audit-{engine}")
            url = catalogue_url_for(request, engine, template=base.database)
            home = copy_home(base, root / "home", url)
            photos = root / "photos"
            env = {"COINLENS_DATABASE_URL": url or ""}
            runner = CliRunner()
            for folder in (
                intake(SAMPLE / "backlog", photos / "intake"),
                recast(SAMPLE / "backlog", photos / "recast"),
            ):
                result = runner.invoke(app, ["identify", str(folder), "--home", str(home)], env=env)
                assert result.exit_code == 0, result.stderr
                (root / f"{folder.name}.out").write_text(result.stdout)
            built[engine] = Reviewable(
                home,
                base.tokens,
                base.references,
                photos,
                url.rsplit("/", 1)[1] if url else None,
            )
        return built[engine]

    return get


@pytest.fixture
def audited(audit_templates, database: str, request, monkeypatch, tmp_path) -> Iterator[Site]:
    template = audit_templates(database)
    url = catalogue_url_for(request, database, template=template.database)
    if url:
        monkeypatch.setenv("COINLENS_DATABASE_URL", url)
    home = Home.open(copy_home(template, tmp_path / "home", url))
    with TestClient(create_app(home), base_url="http://127.0.0.1") as client:
        yield Site(home, client, template.tokens, template.references, template.batch)
    home.close()


def _audit(site: Site, batch: str, who: str = "vic") -> dict:
    response = site.client.get(f"/api/v1/batches/{batch}/audit", headers=site.auth(who))
    assert response.status_code == 200, response.text
    return response.json()


def _draw(site: Site, batch: str, n: int | None = None, who: str = "rita"):
    return site.client.post(
        f"/api/v1/batches/{batch}/audit/draw",
        json={"n": n} if n else None,
        headers=site.auth(who),
    )


def _review(site: Site, specimen_id: int, action: str = "accept", **body) -> dict:
    response = site.client.post(
        f"/api/v1/specimens/{specimen_id}/review",
        json={"action": action, **body},
        headers=site.auth("rita"),
    )
    assert response.status_code == 200, response.text
    return response.json()


# -- the bound --------------------------------------------------------------------------------


def _tail(right: int, reviewed: int, p: float) -> float:
    """P(at least ``right`` of ``reviewed`` right | precision p), summed exactly."""
    return sum(
        comb(reviewed, k) * p**k * (1 - p) ** (reviewed - k) for k in range(right, reviewed + 1)
    )


@pytest.mark.parametrize(("wrong", "expected"), [(30, 0.0), (2, 0.8047), (0, 0.9050)])
def test_the_bound_is_clopper_pearson_on_known_counts(wrong: int, expected: float) -> None:
    right = 30 - wrong
    bound = lower_bound(right, 30)
    assert bound == pytest.approx(expected, abs=5e-5)
    if right:  # the least precision that still makes so many right 5% likely
        assert _tail(right, 30, bound) == pytest.approx(0.05, abs=1e-6)
    assert lower_bound(30, 30) == pytest.approx(0.05 ** (1 / 30))
    state = verdict(30, wrong, 0.93)
    assert not state.allowed and state.lower_bound == bound
    if wrong == 0:  # 42 right of 42 reaches 0.93, 41 of 41 does not
        assert state.more_needed == 12
        assert lower_bound(42, 42) >= 0.93 > lower_bound(41, 41)
    assert "more coin" in state.sentence() or wrong == 30


# -- shift ------------------------------------------------------------------------------------


def test_shift_is_found_on_a_rephotographed_batch_and_not_on_the_homes(
    audited: Site, audit_templates, database: str
) -> None:
    home_batch, other = _audit(audited, "intake"), _audit(audited, "recast")
    assert not home_batch["shift"]["shifted"] and home_batch["auto_accept_allowed"]
    assert home_batch["shift"]["score"] <= home_batch["shift"]["threshold"]
    assert other["shift"]["shifted"] and other["held"] and not other["auto_accept_allowed"]
    assert other["shift"]["score"] > other["shift"]["threshold"]
    # identify said so in one line each
    root = audit_templates(database).batch.parent
    assert "batch recast: shift score" in (root / "recast.out").read_text().replace("\n", " ")
    assert "auto-accept HELD" in (root / "recast.out").read_text().replace("\n", " ")
    assert "photographed like the calibration" in (root / "intake.out").read_text()
    # the home's batch keeps its auto-accept; none of the shifted batch's is waiting
    listing = audited.client.get(
        "/api/v1/specimens?batch=recast&limit=200", headers=audited.auth("vic")
    ).json()["items"]
    assert listing and all(item["decision"] != "auto_accept" for item in listing)
    with audited.home.catalog.reader() as session:
        waiting = session.scalars(
            select(Specimen.id).where(
                Specimen.batch == "intake", Specimen.decision == "auto_accept"
            )
        ).all()
    assert waiting


def test_identify_out_lines_carry_the_decision_after_the_hold(audited: Site, tmp_path) -> None:
    out = tmp_path / "recast.jsonl"
    result = CliRunner().invoke(
        app,
        [
            "identify",
            str(audited.batch / "recast"),
            "--home",
            str(audited.home.settings.home),
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.stderr
    assert "0 already done" not in result.stdout  # nothing new: the coins were done already
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert records and all(r["decision"] != "auto_accept" for r in records)
    held = [r for r in records if "held for an audit" in (r["decision_reason"] or "")]
    assert all(r["decision"] == "review" and r["batch"] == "recast" for r in held)


def test_bulk_accept_of_a_held_batch_is_refused_by_the_api_and_the_page(audited: Site) -> None:
    refused = audited.client.post(
        "/api/v1/bulk-accept", json={"batch": "recast"}, headers=audited.auth("rita")
    )
    assert refused.status_code == 409 and "held for an audit" in refused.json()["error"]
    sign_in(audited.client, "rita")
    page = audited.client.get("/bulk-accept?batch=recast")
    assert page.status_code == 200 and 'id="batch-hold"' in page.text
    assert 'id="confirm-bulk"' not in page.text and "/batches/recast/audit" in page.text
    csrf = page.text.split('name="csrf_token" value="')[1].split('"')[0]
    posted = audited.client.post(
        "/bulk-accept", data={"batch": "recast", "expected_count": 0, "csrf_token": csrf}
    )
    assert posted.status_code == 409 and "held for an audit" in posted.text
    queue = audited.client.get("/queue?batch=recast")
    assert 'id="batch-hold"' in queue.text and 'id="bulk-accept"' not in queue.text
    with audited.home.catalog.reader() as session:
        assert not session.scalars(
            select(Specimen.id).where(Specimen.batch == "recast", Specimen.status == "catalogued")
        ).all()


# -- the audit --------------------------------------------------------------------------------


def test_an_audit_draws_counts_and_allows_or_holds(audited: Site) -> None:
    first = _draw(audited, "intake", 6)
    assert first.status_code == 200, first.text
    drawn = first.json()["drawn_now"]
    assert len(drawn) == 6 and first.json()["sample"] == drawn
    with audited.home.catalog.reader() as session:
        rows = session.scalars(select(AuditSample).where(AuditSample.batch == "intake")).all()
        suggested = {s.id: s.suggested_type_id for s in session.scalars(select(Specimen))}
    assert {r.specimen_id for r in rows} == set(drawn) and {r.drawn_by for r in rows} == {"rita"}
    # a random draw of the candidates, spread over their suggested types
    assert len({suggested[i] for i in drawn}) >= 3
    other_type = next(t for t in set(suggested.values()) if t and t != suggested[drawn[0]])
    _review(audited, drawn[0], "correct", type_id=other_type)  # the suggestion was wrong
    for specimen_id in drawn[1:4]:
        _review(audited, specimen_id)
    state = _audit(audited, "intake")
    assert (state["reviewed"], state["wrong"]) == (4, 1)
    assert state["precision"] == 0.75 and state["lower_bound"] == pytest.approx(
        lower_bound(3, 4), abs=1e-4
    )
    assert state["sample"] == drawn[4:]
    # a mistake found holds even the home's batch until the audit settles it
    assert state["held"] and state["more_needed"] > 0 and "more coins" in state["message"]
    assert [h["reviewed"] for h in state["history"]] == [1, 2, 3, 4]
    coins = {c["specimen_id"]: c for c in state["coins"]}
    assert coins[drawn[0]]["right"] is False and coins[drawn[1]]["right"] is True
    assert coins[drawn[0]]["reviewer"] == "rita"
    assert (
        audited.client.post(
            "/api/v1/bulk-accept", json={"batch": "intake"}, headers=audited.auth("rita")
        ).status_code
        == 409
    )
    # undoing the wrong one's review takes it out of the count again
    undo = audited.client.post(
        f"/api/v1/reviews/{coins[drawn[0]]['review_id']}/undo", headers=audited.auth("rita")
    )
    assert undo.status_code == 200, undo.text
    state = _audit(audited, "intake")
    assert (state["reviewed"], state["wrong"]) == (3, 0) and not state["held"]


def test_an_interrupted_audit_resumes_and_two_reviewers_never_share_a_coin(
    audited: Site,
) -> None:
    drawn = _draw(audited, "intake", 4).json()["drawn_now"]

    def next_for(who: str) -> int | None:
        response = audited.client.post(
            "/api/v1/batches/intake/audit/next", headers=audited.auth(who)
        )
        assert response.status_code == 200, response.text
        return response.json()["specimen_id"]

    rita, ada = next_for("rita"), next_for("ada")
    assert rita != ada and {rita, ada} <= set(drawn)
    assert next_for("rita") == rita  # held for her until she reviews it
    _review(audited, rita)
    # "interrupted": a new client (another day), the state is in the catalogue
    with TestClient(create_app(audited.home), base_url="http://127.0.0.1") as later:
        state = later.get("/api/v1/batches/intake/audit", headers=audited.auth("vic")).json()
    assert state["reviewed"] == 1 and set(state["sample"]) == set(drawn) - {rita}
    seen = {rita, ada}
    while (following := next_for("rita")) is not None:
        assert following not in seen  # never ada's coin
        seen.add(following)
        _review(audited, following)
    assert seen == set(drawn) and next_for("ada") == ada
    # reviewing a coin someone else already settled is refused, not counted twice
    again = audited.client.post(
        f"/api/v1/specimens/{rita}/review", json={"action": "accept"}, headers=audited.auth("ada")
    )
    assert again.status_code == 409
    assert _audit(audited, "intake")["reviewed"] == 3


def test_a_passing_audit_releases_the_held_batch_for_bulk_accept(audited: Site) -> None:
    drawn = _draw(audited, "intake", 2).json()["drawn_now"]
    with audited.home.catalog.reader() as session:
        suggested = session.get(Specimen, drawn[0]).suggested_type_id
        other = session.scalar(
            select(Specimen.type_id).where(
                Specimen.type_id.is_not(None), Specimen.type_id != suggested
            )
        )
    _review(audited, drawn[0], "correct", type_id=other)
    _review(audited, drawn[1])
    held = _audit(audited, "intake")
    assert held["held"] and held["candidates"] > 0
    waiting = audited.client.get(
        "/api/v1/specimens?batch=intake&decision=auto_accept&status=backlog",
        headers=audited.auth("vic"),
    ).json()["items"]
    assert waiting == []  # held: none waits as auto-accept
    refused = audited.client.post(
        "/api/v1/bulk-accept", json={"batch": "intake"}, headers=audited.auth("rita")
    )
    assert refused.status_code == 409
    # the same audit judged by a home that asks for no bound at all: allowed, released
    relaxed = Home.open(
        audited.home.settings.home,
        audit_tolerance=audited.home.settings.auto_accept_precision,
    )
    with TestClient(create_app(relaxed), base_url="http://127.0.0.1") as client:
        site = Site(relaxed, client, audited.tokens, audited.references, audited.batch)
        state = _audit(site, "intake")
        assert state["auto_accept_allowed"] and state["reviewed"] == 2 and state["wrong"] == 1
        accepted = client.post(
            "/api/v1/bulk-accept", json={"batch": "intake"}, headers=site.auth("rita")
        )
        assert accepted.status_code == 200, accepted.text
        assert accepted.json()["accepted"] == state["candidates"]
    relaxed.close()


def test_small_and_empty_batches_get_clear_messages(audited: Site, tmp_path: Path) -> None:
    odd = tmp_path / "odd"
    make_image(odd / "coin.jpg", seed=7)  # one coin, like no reference: nothing to auto-accept
    result = CliRunner().invoke(
        app, ["identify", str(odd), "--home", str(audited.home.settings.home)]
    )
    assert result.exit_code == 0, result.stderr
    said = " ".join(result.stdout.split())
    assert "1 coin: too few to tell whether the photography differs" in said
    state = _audit(audited, "odd")
    assert state["shift"]["score"] is None and state["candidates"] == 0
    response = _draw(audited, "odd", 30)
    assert response.status_code == 400
    assert "has no auto-accept candidates" in response.json()["error"]
    # every candidate drawn already: said so
    candidates = _audit(audited, "intake")["candidates"]
    assert _draw(audited, "intake", 1000).json()["drawn"] == candidates
    again = _draw(audited, "intake", 5)
    assert again.status_code == 400 and "drawn or reviewed already" in again.json()["error"]
    missing = audited.client.get("/api/v1/batches/nowhere/audit", headers=audited.auth("vic"))
    assert missing.status_code == 404 and "no coin of it was identified" in missing.json()["error"]
    cli = CliRunner().invoke(
        app, ["audit", "--batch", "nowhere", "--home", str(audited.home.settings.home)]
    )
    assert cli.exit_code == 2 and "no coin of it was identified" in cli.stderr


def test_coinlens_audit_draws_and_prints_the_verdict(audited: Site) -> None:
    home = str(audited.home.settings.home)
    shown = CliRunner().invoke(app, ["audit", "--batch", "intake", "--home", home, "--json"])
    assert shown.exit_code == 0, shown.stderr
    assert json.loads(shown.stdout)["drawn"] == 0  # not shifted: nothing drawn unasked
    drawn = CliRunner().invoke(
        app, ["audit", "--batch", "intake", "--draw", "5", "--reviewer", "kim", "--home", home]
    )
    assert drawn.exit_code == 0, drawn.stderr
    said = " ".join(drawn.stdout.split())
    assert "drawn 5, reviewed 0" in said and "auto-accept: allowed" in said
    assert "5 drawn coins to review" in said
    state = _audit(audited, "intake")
    assert len(state["sample"]) == 5 and {c["drawn_by"] for c in state["coins"]} == {"kim"}


def test_the_audit_page_shows_the_shift_and_draws_for_a_reviewer(audited: Site) -> None:
    sign_in(audited.client, "rita")
    page = audited.client.get("/batches/recast/audit")
    assert page.status_code == 200
    assert 'id="shift-score"' in page.text and "Held" in page.text
    csrf = page.text.split('name="csrf_token" value="')[1].split('"')[0]
    drawn = audited.client.post("/batches/intake/audit/draw", data={"n": 3, "csrf_token": csrf})
    assert drawn.status_code == 200 and "drew 3 coins into the audit" in drawn.text
    opened = audited.client.post(
        "/batches/intake/audit/next", data={"csrf_token": csrf}, follow_redirects=False
    )
    assert opened.status_code == 303 and opened.headers["location"].startswith("/specimens/")
    assert "back=%2Fbatches%2Fintake%2Faudit" in opened.headers["location"]
    audited.client.cookies.clear()
    sign_in(audited.client, "vic")
    viewer = audited.client.get("/batches/intake/audit")
    assert viewer.status_code == 200 and 'id="audit-draw"' not in viewer.text
    assert audited.client.post(
        "/batches/intake/audit/draw", data={"n": 3, "csrf_token": csrf}
    ).status_code in (401, 403)


def test_teaching_draws_take_the_least_certain_of_each_type_and_do_not_count(
    audited: Site,
) -> None:
    with audited.home.catalog.reader() as session:
        waiting = session.execute(
            select(Specimen.id, Specimen.suggested_type_id, Specimen.suggestion_score).where(
                Specimen.batch == "intake",
                Specimen.status == "backlog",
                Specimen.suggested_type_id.is_not(None),
            )
        ).all()
    types = {t for _, t, _ in waiting}
    response = audited.client.post(
        "/api/v1/batches/intake/audit/draw",
        json={"n": len(types), "purpose": "teach"},
        headers=audited.auth("rita"),
    )
    assert response.status_code == 200, response.text
    chosen = response.json()["drawn_now"]
    of = {i: (t, score) for i, t, score in waiting}
    assert {of[i][0] for i in chosen} == types  # one of each suggested type
    for specimen_id in chosen:
        suggested, score = of[specimen_id]
        assert score == min(s for _, t, s in waiting if t == suggested)
    other = next(t for t in types if t != of[chosen[0]][0])
    _review(audited, chosen[0], "correct", type_id=other)
    state = _audit(audited, "intake")
    assert (state["reviewed"], state["wrong"]) == (0, 0) and not state["held"]
    coins = {c["specimen_id"]: c for c in state["coins"]}
    assert coins[chosen[0]]["purpose"] == "teach" and coins[chosen[0]]["right"] is False
