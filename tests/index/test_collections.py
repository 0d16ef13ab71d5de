"""``index_shard_by``: the references' index is sharded by collection, end to end."""

from __future__ import annotations

import json
from pathlib import Path

from coinlens.catalog import Home
from coinlens.identify.engine import current_model
from coinlens.index import ReferenceIndex
from reviewable import SAMPLE

SERIES = {"1c": "KAA", "2c": "KAA", "10c": "KAA", "1e": "STU", "2e": "STU", "50c": "STU"}


def _manifest(root: Path) -> Path:
    lines = ["image,accession,side,type_reference"]
    for label, series in SERIES.items():
        for number, path in enumerate(sorted((SAMPLE / "references" / label).glob("*.jpg"))[:4]):
            (root / label).mkdir(exist_ok=True)
            (root / label / path.name).write_bytes(path.read_bytes())
            lines.append(f"{label}/{path.name},{series}-{label}-{number},obverse,{series} {label}")
    manifest = root / "references.csv"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


def _shards(home: Path, env: dict[str, str]) -> dict[str, int]:
    with Home.open(home, index_shard_by=env.get("COINLENS_INDEX_SHARD_BY")) as opened:
        model = current_model(opened)
        index = ReferenceIndex.load(opened.store, model.index_key, model.embedder.dim)
        return {name: list(index.shard_of.values()).count(name) for name in index.shards}


def test_references_are_sharded_by_series_and_follow_a_changed_setting(cli, home, tmp_path):
    series = {"COINLENS_INDEX_SHARD_BY": "series"}
    result = cli("ingest", tmp_path, "--manifest", _manifest(tmp_path), "--home", home, env=series)
    assert result.exit_code == 0, result.stderr
    backlog = tmp_path / "backlog"
    backlog.mkdir()
    for label in ("1c", "2e"):
        (backlog / f"{label}.jpg").write_bytes(
            sorted((SAMPLE / "backlog" / label).glob("*.jpg"))[0].read_bytes()
        )
    out = tmp_path / "out.jsonl"
    result = cli("identify", backlog, "--home", home, "--out", out, env=series)
    assert result.exit_code == 0, result.stderr
    assert _shards(home, series) == {"KAA": 12, "STU": 12}
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 2 and all(r["suggestions"] for r in records)  # searched across both

    # Back to one shard: every reference is re-filed, none lost.
    assert (
        cli("identify", backlog, "--home", home, env={"COINLENS_INDEX_SHARD_BY": ""}).exit_code == 0
    )
    assert _shards(home, {}) == {"": 24}


def test_an_unknown_shard_field_is_a_settings_error(cli, home):
    result = cli("status", "--home", home, env={"COINLENS_INDEX_SHARD_BY": "colour"})
    assert result.exit_code == 2 and "index_shard_by 'colour'" in result.stderr
