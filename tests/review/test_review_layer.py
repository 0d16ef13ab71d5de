"""The review layer's Python API: queue order and pages, actions, conflicts, bulk accept."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from coinlens.catalog import CoinType, Review, Specimen, TypeEdit
from coinlens.review import (
    CataloguedCoin,
    QueueFilter,
    ReviewConflict,
    ReviewError,
    TypeNotFound,
    bulk_accept,
    bulk_accept_candidates,
    history,
    queue_counts,
    queue_page,
    record_measures,
    record_type,
    review_specimen,
    type_history,
)
from coinlens.review.queue import QueueError


def test_queue_pages_are_keyset_ordered_and_filtered(site) -> None:
    catalog = site.home.catalog
    with catalog.reader() as session:
        pages, cursor = [], None
        while True:
            page = queue_page(session, QueueFilter(order="margin"), cursor=cursor, limit=7)
            pages.append(page.items)
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        items = [item for page in pages for item in page]
        assert [len(p) for p in pages] == [7, 7, 7, 3]
        assert [i["margin"] for i in items] == sorted(i["margin"] for i in items)
        counts = queue_counts(session, QueueFilter(batch="batch-a"))
        assert counts["total"] == 24
        auto = queue_page(session, QueueFilter(decision="auto_accept"), limit=100).items
        assert len(auto) == counts["auto_accept"] == bulk_accept_candidates(session, "batch-a")
    with pytest.raises(QueueError, match="decision"):
        QueueFilter(decision="maybe")
    with pytest.raises(QueueError, match="order"):
        QueueFilter(order="random")


def test_actions_leave_an_audit_trail_and_refuse_stale_versions(site) -> None:
    catalog = site.home.catalog
    with catalog.reader() as session:
        item = queue_page(session, QueueFilter(), limit=1).items[0]
    skipped = review_specimen(
        catalog, item["id"], reviewer="kim", action="skip", expected_version=item["version"]
    )
    assert skipped["version"] == item["version"]  # a skip changes nothing
    accepted = review_specimen(
        catalog, item["id"], reviewer="kim", action="accept", expected_version=item["version"]
    )
    assert accepted["status"] == "catalogued" and accepted["type_id"] == item["suggested_type_id"]
    assert accepted["version"] == item["version"] + 1
    with pytest.raises(ReviewConflict, match="changed by kim"):
        review_specimen(
            catalog, item["id"], reviewer="lee", action="new_type", expected_version=item["version"]
        )
    with pytest.raises(CataloguedCoin, match="catalogued as .*re-attribute it"):
        review_specimen(catalog, item["id"], reviewer="lee", action="correct", type_id=999,
                        expected_version=None)  # fmt: skip
    with pytest.raises(ReviewError, match="does not exist"):
        review_specimen(catalog, item["id"], reviewer="lee", action="reattribute", type_id=999,
                        comment="the legend says 10c", expected_version=None)  # fmt: skip
    with catalog.reader() as session:
        trail = history(session, item["id"])
        assert [(h["reviewer"], h["action"]) for h in trail] == [("kim", "skip"), ("kim", "accept")]
        assert session.get(Specimen, item["id"]).status == "catalogued"


def test_bulk_accept_checks_the_confirmed_count(site) -> None:
    catalog = site.home.catalog
    with catalog.reader() as session:
        ready = bulk_accept_candidates(session, None)
    with pytest.raises(ReviewConflict):
        bulk_accept(catalog, None, reviewer="kim", expected_count=ready - 1)
    accepted = bulk_accept(catalog, None, reviewer="kim", expected_count=ready).specimen_ids
    assert len(accepted) == ready
    assert bulk_accept(catalog, None, reviewer="kim").specimen_ids == []  # safe to repeat
    with catalog.reader() as session:
        reviews = session.scalars(select(Review)).all()
        assert len(reviews) == ready and {r.action for r in reviews} == {"bulk_accept"}
        statuses = {session.get(Specimen, i).status for i in accepted}
        assert statuses == {"catalogued"}


def test_records_are_checked_like_a_manifest_and_guarded_like_reviews(site) -> None:
    catalog = site.home.catalog
    with catalog.reader() as session:
        item = queue_page(session, QueueFilter(), limit=1).items[0]
        type_id = session.scalar(select(CoinType.id).order_by(CoinType.id))
    # text as a form or a manifest gives it; the same rules and messages as ingest's
    with pytest.raises(ReviewError, match=r"weight: not a number \('3,9g'; grams"):
        record_measures(
            catalog, item["id"], reviewer="kim", expected_version=None, values={"weight_g": "3,9g"}
        )
    with pytest.raises(ReviewError, match="unknown field 'note'"):
        record_measures(
            catalog, item["id"], reviewer="kim", expected_version=None, values={"note": "x"}
        )
    state = record_measures(
        catalog,
        item["id"],
        reviewer="kim",
        expected_version=item["version"],
        values={"weight_g": " 3.9 "},
    )
    assert state["changed"] == {"weight_g": [None, 3.9]}
    with pytest.raises(ReviewConflict, match="changed by kim"):  # lee opened it before kim saved
        record_measures(
            catalog,
            item["id"],
            reviewer="lee",
            expected_version=item["version"],
            values={"weight_g": "4.0"},
        )

    first = record_type(
        catalog,
        type_id,
        reviewer="kim",
        expected_version=None,
        values={"date_to": "-44", "authority": "  Julius Caesar "},
    )
    assert first["authority"] == "Julius Caesar" and first["date_to"] == -44
    with pytest.raises(ReviewError, match="date_from -40 is after date_to -44"):
        record_type(
            catalog, type_id, reviewer="kim", expected_version=None, values={"date_from": "-40"}
        )
    with pytest.raises(ReviewConflict, match="changed by kim"):
        record_type(
            catalog,
            type_id,
            reviewer="lee",
            expected_version=first["version"] - 1,
            values={"mint": "Rome"},
        )
    with pytest.raises(TypeNotFound):
        record_type(catalog, 10**6, reviewer="kim", expected_version=None, values={})
    unchanged = record_type(
        catalog,
        type_id,
        reviewer="kim",
        expected_version=None,
        values={"authority": "Julius Caesar"},
    )
    assert unchanged["changed"] == {} and unchanged["version"] == first["version"]
    with catalog.reader() as session:
        (edit,) = type_history(session, type_id)
        assert edit["changes"] == {"date_to": [None, -44], "authority": [None, "Julius Caesar"]}
        assert session.scalar(select(func.count()).select_from(TypeEdit)) == 1
        trail = [r.action for r in session.scalars(select(Review))]
        assert trail == ["record"]
