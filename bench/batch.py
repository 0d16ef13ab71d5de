"""Batch identification throughput: local engine vs Ray, SQLite + folder vs PostgreSQL + S3.

Makes ``--photos`` backlog photos from the bundled sample's crops (each a real coin, turned by a
random angle and relit, so no two are byte-identical), catalogues the sample's references, and
times ``coinlens identify`` over the photos (ingest, localisation, embedding, matching,
catalogue writes) for every combination asked for. PostgreSQL and S3 are the servers you name:
``--postgres-url postgresql+psycopg://…`` (an empty database per run is created from it) and
``--s3-endpoint http://127.0.0.1:9000`` (a bucket per run); without them those rows are skipped.

Prints and writes JSON (``bench/results/batch.json``). Usage:
``python bench/batch.py [--photos 10000] [--engines local,ray] [--postgres-url URL]
[--s3-endpoint URL] [--setups sqlite,postgresql]``
"""

from __future__ import annotations

import json
import os
import random
import tempfile
import time
import uuid
from pathlib import Path

from PIL import Image, ImageEnhance
from typer.testing import CliRunner

from coinlens.cli.app import app
from common import REPO, bench_parser, write_report

SAMPLE = REPO / "examples" / "euro-coins"


def make_photos(folder: Path, count: int) -> None:
    """``count`` distinct photos of real coins: sample crops turned and relit."""
    sources = sorted((SAMPLE / "backlog").rglob("*.jpg"))
    rng = random.Random(0)
    for n in range(count):
        source = sources[n % len(sources)]
        image = Image.open(source).convert("RGB")
        image = image.rotate(rng.uniform(0, 360), resample=Image.Resampling.BILINEAR)
        image = ImageEnhance.Brightness(image).enhance(rng.uniform(0.85, 1.15))
        target = folder / f"{n // 1000:03d}" / f"{n:06d}.jpg"
        target.parent.mkdir(parents=True, exist_ok=True)
        image.save(target, quality=90)


def run_config(
    photos: Path, root: Path, *, engine: str, database_url: str | None, s3_endpoint: str | None
) -> dict:
    home = root / f"home-{uuid.uuid4().hex[:8]}"
    env = {"COINLENS_DATABASE_URL": ""}
    if database_url:
        import psycopg

        name = f"bench_{uuid.uuid4().hex[:12]}"
        admin = database_url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        env["COINLENS_DATABASE_URL"] = database_url.rsplit("/", 1)[0] + f"/{name}"
    if s3_endpoint:
        env.update(
            {
                "COINLENS_STORE_URL": f"s3://bench-{uuid.uuid4().hex[:8]}/store",
                "COINLENS_S3_ENDPOINT_URL": s3_endpoint,
                "COINLENS_S3_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "bench"),
                "COINLENS_S3_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "bench"),
            }
        )
    runner = CliRunner()

    def coinlens(*args: str) -> str:
        result = runner.invoke(app, [*args, "--home", str(home)], env=env)
        if result.exit_code != 0:
            raise RuntimeError(f"coinlens {' '.join(args)} failed: {result.stderr}")
        return result.stdout

    coinlens("ingest", str(SAMPLE / "references"))
    coinlens("identify", str(SAMPLE / "backlog" / "2e"))  # warm-up: model, index, calibration
    started = time.perf_counter()
    coinlens("identify", str(photos), "--engine", engine)
    seconds = time.perf_counter() - started
    count = sum(1 for _ in photos.rglob("*.jpg"))
    return {
        "engine": engine,
        "catalogue": "postgresql" if database_url else "sqlite",
        "store": "s3" if s3_endpoint else "folder",
        "photos": count,
        "seconds": round(seconds, 1),
        "images_per_second": round(count / seconds, 2),
    }


def main() -> None:
    parser = bench_parser("batch", __doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=10_000)
    parser.add_argument("--engines", default="local,ray")
    parser.add_argument("--postgres-url", default=None)
    parser.add_argument("--s3-endpoint", default=None)
    parser.add_argument(
        "--setups", default="sqlite,postgresql", help="sqlite (+ folder), postgresql (+ S3)"
    )
    args = parser.parse_args()
    runs, skipped = [], []
    with tempfile.TemporaryDirectory(prefix="coinlens-batch-") as folder:
        root = Path(folder)
        make_photos(root / "photos", args.photos)
        wanted = args.setups.split(",")
        setups = [(None, None)] if "sqlite" in wanted else []
        if "postgresql" not in wanted:
            pass
        elif args.postgres_url and args.s3_endpoint:
            setups.append((args.postgres_url, args.s3_endpoint))
        else:
            skipped.append("postgresql+s3: give --postgres-url and --s3-endpoint")
        for database_url, s3_endpoint in setups:
            for engine in args.engines.split(","):
                result = run_config(
                    root / "photos",
                    root,
                    engine=engine,
                    database_url=database_url,
                    s3_endpoint=s3_endpoint,
                )
                print(json.dumps(result))
                runs.append(result)
    report = {
        "benchmark": "batch identify",
        "runs": runs,
        "skipped": skipped,
    }
    write_report(args.out, report)


if __name__ == "__main__":
    main()
