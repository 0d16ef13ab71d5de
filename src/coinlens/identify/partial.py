"""Partial attribution: the coarser levels of a coin's attribution (series, authority, mint,
denomination), each with its own confidence, for when the exact type is uncertain.

A curator still gains from "Constantine I, Alexandria, type unread": the types a coin is likely
to be often share their authority or mint even where the model cannot tell the types apart (a
mint mark in the exergue, an officina letter). A level's confidence is the sum of the calibrated
confidences of the coin's suggested types that share its value, so that it is never below the
exact type's. The levels come from the type's own record: its authority, mint and denomination,
and its series, read from the reference ("RIC VIII Alexandria 12" -> "RIC VIII").
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from coinlens.catalog import ATTRIBUTION_LEVELS, TYPE_DESCRIPTORS, CoinType

# a corpus abbreviation and its volume: "RIC VIII", "RIC I (second edition)", "RPC I", "RRC"
SERIES = re.compile(r"^(?P<corpus>[A-Z]{2,6})\b(?:[\s,]+(?P<volume>[IVXLC]+\b(?:\s*\([^)]*\))?))?")
# the record field and the concept URI field each level reads
LEVEL_FIELDS = {
    "authority": ("authority", "authority_uri"),
    "mint": ("mint", "mint_uri"),
    "denomination": ("denomination", "denomination_uri"),
}


def series_name(reference: str) -> str | None:
    """The corpus and volume a type reference belongs to ("RIC VIII Alexandria 12" -> "RIC
    VIII", "RPC I, 65" -> "RPC I", "RRC 535/1" -> "RRC"); None where it names none ("2e")."""
    match = SERIES.match(reference.strip())
    if match is None:
        return None
    volume = match["volume"]
    return f"{match['corpus']} {volume.strip()}" if volume else match["corpus"]


def type_levels(record: Mapping[str, Any]) -> dict[str, tuple[str, str | None]]:
    """A type's value at each level it has one for: {level: (value, nomisma URI or None)}.
    ``record`` holds the type's ``reference`` and descriptors (``catalog.TYPE_DESCRIPTORS``)."""
    out: dict[str, tuple[str, str | None]] = {}
    series = series_name(str(record.get("reference") or ""))
    if series:
        out["series"] = (series, None)
    for level, (name, uri) in LEVEL_FIELDS.items():
        value = record.get(name)
        if value:
            out[level] = (str(value), record.get(uri) or None)
    return out


def suggest_levels(suggestions: Iterable[tuple[Mapping[str, Any], float]]) -> list[dict[str, Any]]:
    """For each level (``catalog.ATTRIBUTION_LEVELS``) the value most of a coin's suggested
    types share, weighed by their calibrated confidences, and that weight as the level's
    confidence: [{"level", "value", "uri", "confidence", "types"}], levels without a value left
    out. ``suggestions``: (type record, confidence), as ranked."""
    ranked = [(type_levels(record), float(confidence)) for record, confidence in suggestions]
    out = []
    for level in ATTRIBUTION_LEVELS:
        totals: dict[str, float] = {}
        uris: dict[str, str | None] = {}
        counts: dict[str, int] = {}
        for levels, confidence in ranked:
            if level in levels:
                value, uri = levels[level]
                totals[value] = totals.get(value, 0.0) + confidence
                uris.setdefault(value, uri)
                counts[value] = counts.get(value, 0) + 1
        if not totals:
            continue
        value = max(totals, key=lambda v: (totals[v], -list(totals).index(v)))
        out.append(
            {
                "level": level,
                "value": value,
                "uri": uris[value],
                "confidence": round(min(1.0, totals[value]), 4),
                "types": counts[value],
            }
        )
    return out


def check_attribution(values: Mapping[str, Any]) -> dict[str, str]:
    """A partial attribution a reviewer gives, {level: value}, checked: known levels, values of
    text at most 255 characters, at least one. ValueError says what is wrong."""
    unknown = sorted(set(values) - set(ATTRIBUTION_LEVELS))
    if unknown:
        raise ValueError(
            f"unknown level(s) {', '.join(unknown)}: use {', '.join(ATTRIBUTION_LEVELS)}"
        )
    out = {}
    for level in ATTRIBUTION_LEVELS:
        value = str(values.get(level) or "").strip()
        if len(value) > 255:
            raise ValueError(f"{level}: at most 255 characters")
        if value:
            out[level] = value
    if not out:
        raise ValueError("a partial attribution names at least one level's value")
    return out


def type_records(session: Session, type_ids: Iterable[int | None]) -> dict[int, dict[str, Any]]:
    """The records ``type_levels`` reads, of the types ``type_ids``, by id."""
    wanted = {t for t in type_ids if t is not None}
    if not wanted:
        return {}
    return {
        t.id: {"reference": t.reference, **{name: getattr(t, name) for name in TYPE_DESCRIPTORS}}
        for t in session.scalars(select(CoinType).where(CoinType.id.in_(wanted)))
    }


def levels_of(
    ranked: Iterable[tuple[int | None, float]], records: Mapping[int, Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """``suggest_levels`` of (type id, confidence) suggestions, with the types' ``records``."""
    return suggest_levels(
        (records[type_id], score) for type_id, score in ranked if type_id in records
    )
