"""Photos read straight from a bucket: ``coinlens ingest s3://…`` and ``coinlens identify s3://…``
against a real localbucket server, with the store in S3 too."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from sqlalchemy import func, select

from coinlens.catalog import Home, Image, Specimen, Suggestion
from helpers import make_image

SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "euro-coins"


def _upload(s3_server, bucket: str, files: dict[str, bytes]) -> None:
    client = s3_server.client()
    client.create_bucket(Bucket=bucket)
    for key, data in files.items():
        client.put_object(Bucket=bucket, Key=key, Body=data)


def test_ingest_and_identify_straight_from_a_bucket(cli, home: Path, tmp_path, s3_server, bucket):
    photos = {}
    for name in ("2e", "1c", "50c"):
        for path in sorted((SAMPLE / "references" / name).glob("*.jpg"))[:4]:
            photos[f"museum/catalogued/{name}/{path.name}"] = path.read_bytes()
    photos["museum/catalogued/2e/notes.txt"] = b"not a photo"
    photos["museum/catalogued/2e/broken.jpg"] = b"\xff\xd8\xff\xe0 broken"
    photos["museum/catalogued/.hidden/x.jpg"] = b"hidden"
    for name in ("2e", "1c"):
        path = sorted((SAMPLE / "backlog" / name).glob("*.jpg"))[0]
        photos[f"museum/incoming/{name}-{path.name}"] = path.read_bytes()
    make_image(tmp_path / "page.png", fmt="PNG", seed=5)
    photos["museum/incoming/page.png"] = (tmp_path / "page.png").read_bytes()
    _upload(s3_server, bucket, photos)
    env = {**s3_server.env(), "COINLENS_STORE_URL": f"s3://{bucket}/coinlens-store"}

    result = cli("ingest", f"s3://{bucket}/museum/catalogued", "--home", home, "--json", env=env)
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["ingested"], report["failed"], report["ignored_files"]) == (12, 1, 1)
    assert f"s3://{bucket}/museum/catalogued/2e/broken.jpg: " in result.stderr
    again = cli("ingest", f"s3://{bucket}/museum/catalogued", "--home", home, "--json", env=env)
    assert json.loads(again.stdout)["already_present"] == 12

    out = tmp_path / "results.jsonl"
    found = cli("identify", f"s3://{bucket}/museum/incoming", "--home", home, "--out", out, env=env)
    assert found.exit_code == 0, found.stderr
    records = {Path(r["source"]).name: r for r in map(json.loads, out.read_text().splitlines())}
    assert "page.png" in records and len(records) == 3
    assert all(r["source"].startswith(f"s3://{bucket}/museum/incoming/") for r in records.values())

    keys = {o["Key"] for o in s3_server.client().list_objects_v2(Bucket=bucket)["Contents"]}
    stored = {k.split("/")[1] for k in keys if k.startswith("coinlens-store/")}
    assert {"images", "crops", "thumbnails", "indexes"} <= stored
    assert not (home / "store").exists()  # nothing went to a local folder
    settings = {**s3_server.env_settings(), "store_url": f"s3://{bucket}/coinlens-store"}
    with Home.open(home, **settings) as opened, opened.catalog.reader() as session:
        assert session.scalar(select(func.count()).select_from(Specimen)) == 15
        assert session.scalar(select(func.count(func.distinct(Suggestion.specimen_id)))) == 3
        sources = set(session.scalars(select(Image.source)))
        first_2e = next(k for k in sorted(photos) if "/catalogued/2e/train" in k)
        assert f"s3://{bucket}/{first_2e}" in sources


def test_a_missing_bucket_or_empty_prefix_is_bad_input(cli, home: Path, s3_server, bucket):
    env = s3_server.env()
    missing = cli("ingest", f"s3://{bucket}/nothing", "--home", home, env=env)
    assert missing.exit_code == 2 and bucket in missing.stderr
    s3_server.client().create_bucket(Bucket=bucket)
    empty = cli("identify", f"s3://{bucket}/nothing", "--home", home, env=env)
    assert empty.exit_code == 2 and "no objects found" in empty.stderr
    shutil.rmtree(home, ignore_errors=True)
