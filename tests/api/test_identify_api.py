"""POST /api/v1/identify, and what it refuses: oversized, bombs, disguised files, odd names."""

from __future__ import annotations

import io

from PIL import Image
from sqlalchemy import func, select

from coinlens.catalog import Image as ImageRow
from coinlens.catalog import Specimen, Suggestion
from helpers import png_bomb
from reviewable import SAMPLE, sign_in


def _counts(site) -> tuple[int, int, int, int]:
    with site.home.catalog.reader() as session:
        return (
            session.scalar(select(func.count()).select_from(Specimen)),
            session.scalar(select(func.count()).select_from(ImageRow)),
            session.scalar(select(func.count()).select_from(Suggestion)),
            sum(1 for _ in site.home.store.list()),
        )


def _reference(site, type_name: str, index: int = 0) -> bytes:
    return sorted((site.references / type_name).glob("*.jpg"))[index].read_bytes()


def test_identify_returns_suggestions_and_stores_nothing(site) -> None:
    before = _counts(site)
    response = site.client.post(
        "/api/v1/identify",
        files={"images": ("a.jpg", _reference(site, "2e"), "application/octet-stream")},
        headers=site.auth("vic"),
    )
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["stored"] is False and result["decision"] in {"auto_accept", "review"}
    assert {"auto_accept": "at or above", "review": "below"}[result["decision"]] in (
        result["decision_reason"]
    )
    top = result["suggestions"][0]
    assert top["type"] == "2e" and 0 < top["score"] <= 1
    assert top["evidence"] and top["evidence"][0]["key"].startswith("images/")
    scores = [s["score"] for s in result["suggestions"]]
    assert scores == sorted(scores, reverse=True) and len(scores) == 5
    assert result["partial_attribution"] == []  # euro types name no series, authority or mint
    assert _counts(site) == before


def test_two_sides_are_scored_together(site) -> None:
    files = [
        ("images", ("front.jpg", _reference(site, "1e", 0), "image/jpeg")),
        ("images", ("back.jpg", _reference(site, "1e", 1), "image/jpeg")),
    ]
    response = site.client.post(
        "/api/v1/identify",
        files=files,
        data={"sides": ["obverse", "reverse"], "top_k": "3"},
        headers=site.auth("vic"),
    )
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["sides"] == ["obverse", "reverse"]
    assert result["suggestions"][0]["type"] == "1e" and len(result["suggestions"]) == 3
    three = [("images", (f"{n}.jpg", _reference(site, "1e", n), "image/jpeg")) for n in range(3)]
    too_many = site.client.post("/api/v1/identify", files=three, headers=site.auth("vic"))
    assert too_many.status_code == 400 and "one or two" in too_many.json()["error"]
    odd_side = site.client.post(
        "/api/v1/identify", files=files[:1], data={"sides": ["edge"]}, headers=site.auth("vic")
    )
    assert odd_side.status_code == 400


def test_store_true_catalogues_a_backlog_coin_for_reviewers_only(site) -> None:
    walk_in = sorted((SAMPLE / "backlog" / "50c").glob("*.jpg"))[-1].read_bytes()  # no reference
    photo = {"images": ("../../etc/passwd", walk_in, "image/jpeg")}
    refused = site.client.post(
        "/api/v1/identify", files=photo, data={"store": "true"}, headers=site.auth("vic")
    )
    assert refused.status_code == 403
    before = _counts(site)
    stored = site.client.post(
        "/api/v1/identify",
        files=photo,
        data={"store": "true", "batch": "walk-in"},
        headers=site.auth("rita"),
    )
    assert stored.status_code == 200, stored.text
    result = stored.json()
    assert result["stored"] is True and result["accession"].startswith("upload/")
    assert result["suggestions"][0]["type"] == "50c"
    after = _counts(site)
    assert after[0] == before[0] + 1 and after[2] > before[2]
    with site.home.catalog.reader() as session:
        specimen = session.scalar(select(Specimen).where(Specimen.accession == result["accession"]))
        assert specimen.status == "backlog" and specimen.batch == "walk-in"
        assert specimen.decision == result["decision"]
        assert specimen.images[0].source == "upload:../../etc/passwd"  # a label, never a path
        assert specimen.images[0].key.startswith("images/")  # content-addressed
    # why it went where it went, in the answer, the specimen's record and its page
    wording = {"auto_accept": "at or above", "review": "below", "possible_new_type": "catalogue"}
    assert wording[result["decision"]] in result["decision_reason"]
    detail = site.client.get(f"/api/v1/specimens/{specimen.id}", headers=site.auth("rita")).json()
    assert wording[result["decision"]] in detail["decision_reason"]
    sign_in(site.client, "rita")
    page = site.client.get(f"/specimens/{specimen.id}").text
    assert 'id="decision-reason"' in page
    assert not [k for k in site.home.store.list() if "passwd" in k or ".." in k]
    again = site.client.post(
        "/api/v1/identify", files=photo, data={"store": "true"}, headers=site.auth("rita")
    )
    assert again.json()["accession"] == result["accession"]
    assert _counts(site)[0] == after[0]  # the same upload twice is one specimen
    # A catalogued coin's own photo sent in again: to review, never to bulk accept (one coin
    # would be catalogued twice), naming the coin.
    copy = {"images": ("copy.jpg", _reference(site, "50c", 2), "image/jpeg")}
    twice = site.client.post(
        "/api/v1/identify", files=copy, data={"store": "true"}, headers=site.auth("rita")
    ).json()
    assert twice["decision"] == "review" and twice["suggestions"][0]["type"] == "50c"
    assert twice["decision_reason"].startswith("the same photo as catalogued coin references/50c/")


def test_upload_abuse_is_refused_cleanly_and_stores_nothing(site) -> None:
    before = _counts(site)
    limit = site.home.settings.max_upload_bytes
    huge = b"\xff\xd8\xff\xe0" + bytes(50 * 1024 * 1024)
    cases = {
        "50 MB": ("big.jpg", huge, 413),
        "bomb": ("bomb.png", png_bomb(), 415),
        "pdf": ("scan.jpg", b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n", 415),
        "empty": ("empty.jpg", b"", 415),
    }
    for name, (filename, data, status) in cases.items():
        for store in ("false", "true"):
            response = site.client.post(
                "/api/v1/identify",
                files={"images": (filename, data, "image/jpeg")},
                data={"store": store},
                headers=site.auth("rita"),
            )
            assert response.status_code == status, (name, response.text)
            assert response.json()["error"], name
    assert len(huge) > 2 * limit
    assert _counts(site) == before


def test_a_truncated_upload_without_content_length_is_cut_off(site) -> None:
    def body():
        yield b'--b\r\nContent-Disposition: form-data; name="images"; filename="x.jpg"\r\n'
        yield b"Content-Type: image/jpeg\r\n\r\n"
        for _ in range(30):
            yield bytes(1024 * 1024)
        yield b"\r\n--b--\r\n"

    response = site.client.post(
        "/api/v1/identify",
        content=body(),
        headers={**site.auth("vic"), "Content-Type": "multipart/form-data; boundary=b"},
    )
    assert response.status_code == 413


def test_sql_metacharacters_in_searches_are_just_text(site) -> None:
    for text in ["' OR 1=1 --", "%", "_", "2e'; DROP TABLE specimen; --", '"\\']:
        types = site.client.get("/api/v1/types", params={"q": text}, headers=site.auth("vic"))
        assert types.status_code == 200 and types.json()["items"] == [], text
        found = site.client.get(
            "/api/v1/specimens", params={"accession": text}, headers=site.auth("vic")
        )
        assert found.status_code == 200 and found.json()["items"] == [], text
        queue = site.client.get("/api/v1/queue", params={"batch": text}, headers=site.auth("vic"))
        assert queue.status_code == 200 and queue.json()["items"] == [], text
    assert _counts(site)[0] == 72


def test_a_real_photo_in_another_format_is_sniffed_not_named(site) -> None:
    image = Image.open(io.BytesIO(_reference(site, "2e")))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    response = site.client.post(
        "/api/v1/identify",
        files={"images": ("photo.jpg", buffer.getvalue(), "image/jpeg")},
        headers=site.auth("vic"),
    )
    assert response.status_code == 200 and response.json()["suggestions"][0]["type"] == "2e"
