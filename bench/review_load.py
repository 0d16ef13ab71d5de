"""Review-server load: queue, catalogue and dashboard pages and identification under load.

Builds a home with the bundled sample's references (real images) and 100,000 synthetic backlog
specimens with suggestions (rows only, sharing real thumbnails), starts ``coinlens serve`` on
127.0.0.1, and measures latency (p50/p95) and throughput of:
- the queue page (HTML, signed in) first page and filtered by batch and decision;
- deep queue pages through ``/api/v1/queue`` cursors (page 1,000 costs what page 1 costs);
- the catalogue: ``/types`` (all, by waiting coins, searched), ``/specimens`` page 1 and page
  1,000 of the backlog and a search, and the dashboard ``/``;
- ``POST /api/v1/identify`` with real coin photos (nothing stored);
- visual search (``POST /search``, the results page) one photo at a time, warm server.

Prints and writes JSON (``bench/results/review_load.json``). Usage:
``python bench/review_load.py [--specimens 100000] [--clients 10] [--requests 20]``
"""

from __future__ import annotations

import asyncio
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from sqlalchemy import insert, select

from coinlens.api.accounts import add_user, create_token
from coinlens.catalog import CoinType, Home, Image, Specimen
from coinlens.cli.app import run_ingest
from common import REPO, bench_parser, write_report

SAMPLE = REPO / "examples" / "euro-coins"
PASSWORD = "bench password"


def synthesise_backlog(home: Home, count: int, batches: int = 20) -> float:
    """``count`` backlog specimens with suggestion summaries and one image row each."""
    started = time.perf_counter()
    rng = random.Random(0)
    with home.catalog.reader() as session:
        type_ids = list(session.scalars(select(CoinType.id)))
        images = session.execute(select(Image.key, Image.thumbnail_key, Image.crop)).all()
    decisions = ["auto_accept", "review", "possible_new_type"]
    with home.catalog.engine.begin() as connection:
        first_id = (connection.scalar(select(Specimen.id).order_by(Specimen.id.desc())) or 0) + 1
        for start in range(0, count, 10_000):
            specimens, rows = [], []
            for n in range(start, min(count, start + 10_000)):
                score = rng.random()
                specimens.append(
                    {
                        "id": first_id + n,
                        "accession": f"synthetic/{n:07d}",
                        "status": "backlog",
                        "batch": f"batch-{n % batches:02d}",
                        "suggested_type_id": rng.choice(type_ids),
                        "suggestion_score": score,
                        "suggestion_margin": score * rng.random(),
                        "decision": decisions[0 if score > 0.9 else (2 if score < 0.1 else 1)],
                        "version": 1,
                    }
                )
                key, thumbnail, crop = rng.choice(images)
                rows.append(
                    {
                        "specimen_id": first_id + n,
                        "side": "unknown",
                        "key": key,
                        "sha256": f"{n:064d}",
                        "thumbnail_key": thumbnail,
                        "width": 150,
                        "height": 150,
                        "crop": crop,
                    }
                )
            connection.execute(insert(Specimen), specimens)
            connection.execute(insert(Image), rows)
    return time.perf_counter() - started


def summarise(latencies: list[float], seconds: float, failures: int) -> dict[str, float]:
    ordered = sorted(latencies)
    return {
        "requests": len(latencies),
        "failures": failures,
        "p50_ms": round(1000 * statistics.median(ordered), 1),
        "p95_ms": round(1000 * ordered[int(0.95 * (len(ordered) - 1))], 1),
        "max_ms": round(1000 * ordered[-1], 1),
        "requests_per_second": round(len(latencies) / seconds, 1),
    }


async def load(clients: int, requests: int, make_request) -> dict[str, float]:
    """``clients`` concurrent clients, each sending ``requests`` requests."""
    latencies: list[float] = []
    failures = 0

    async def client(number: int) -> None:
        nonlocal failures
        for n in range(requests):
            began = time.perf_counter()
            response = await make_request(number, n)
            latencies.append(time.perf_counter() - began)
            failures += response.status_code != 200

    began = time.perf_counter()
    await asyncio.gather(*(client(number) for number in range(clients)))
    return summarise(latencies, time.perf_counter() - began, failures)


async def run_load(url: str, token: str, args, photos: list[bytes]) -> dict[str, dict]:
    auth = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=args.clients)
    results: dict[str, dict] = {}
    async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits) as http:
        login = await http.get("/login")
        csrf = login.text.split('name="csrf_token" value="')[1].split('"')[0]
        await http.post("/login", data={"name": "bench", "password": PASSWORD, "csrf_token": csrf})

        async def first_page(_c: int, _n: int) -> httpx.Response:
            return await http.get("/queue")

        async def filtered_page(c: int, n: int) -> httpx.Response:
            return await http.get(f"/queue?batch=batch-{(c + n) % 20:02d}&decision=review")

        results["queue_page"] = await load(args.clients, args.requests, first_page)
        results["queue_page_filtered"] = await load(args.clients, args.requests, filtered_page)

        cursors = [None]
        page = (await http.get("/api/v1/queue?limit=100", headers=auth)).json()
        while page["next_cursor"] and len(cursors) < 1000:
            cursors.append(page["next_cursor"])
            params = {"limit": 100, "cursor": page["next_cursor"]}
            page = (await http.get("/api/v1/queue", params=params, headers=auth)).json()

        async def deep_page(c: int, n: int) -> httpx.Response:
            cursor = cursors[-1 - ((c * args.requests + n) % 50)]
            params = {"limit": 100, "cursor": cursor}
            return await http.get("/api/v1/queue", params=params, headers=auth)

        results["api_queue_deep_page"] = await load(args.clients, args.requests, deep_page)
        results["api_queue_deep_page"]["page_number"] = len(cursors)

        # the catalogue pages and the dashboard (HTML, signed in)
        async def types_page(c: int, n: int) -> httpx.Response:
            return await http.get("/types" if (c + n) % 2 else "/types?sort=waiting")

        async def types_search(c: int, n: int) -> httpx.Response:
            return await http.get(f"/types?q={['2e', 'c', 'euro', '50'][(c + n) % 4]}")

        async def specimens_first(_c: int, _n: int) -> httpx.Response:
            return await http.get("/specimens?status=backlog")

        async def specimens_deep(c: int, n: int) -> httpx.Response:
            after = f"synthetic/{(49_999 + 50 * ((c + n) % 20)) % args.specimens:07d}"
            return await http.get("/specimens", params={"status": "backlog", "after": after})

        async def specimens_search(c: int, n: int) -> httpx.Response:
            return await http.get(f"/specimens?q=synthetic/00{(c * args.requests + n) % 100:02d}")

        async def dashboard(_c: int, _n: int) -> httpx.Response:
            return await http.get("/")

        results["types_page"] = await load(args.clients, args.requests, types_page)
        results["types_search"] = await load(args.clients, args.requests, types_search)
        results["specimens_page_1"] = await load(args.clients, args.requests, specimens_first)
        results["specimens_page_1000"] = await load(args.clients, args.requests, specimens_deep)
        results["specimens_search"] = await load(args.clients, args.requests, specimens_search)
        results["dashboard"] = await load(args.clients, args.requests, dashboard)

        await http.post(  # warm-up: loads the model and the index once
            "/api/v1/identify", files={"images": ("w.jpg", photos[0])}, headers=auth
        )

        async def identify(c: int, n: int) -> httpx.Response:
            photo = photos[(c * args.requests + n) % len(photos)]
            return await http.post(
                "/api/v1/identify", files={"images": ("coin.jpg", photo)}, headers=auth
            )

        results["identify"] = await load(args.clients, args.identify_requests, identify)

        # visual search: one curator's photo at a time, the results page with its references
        form = await http.get("/search")
        csrf = form.text.split('name="csrf_token" value="')[1].split('"')[0]

        async def visual_search(_c: int, n: int) -> httpx.Response:
            photo = photos[n % len(photos)]
            return await http.post(
                "/search", data={"csrf_token": csrf}, files={"images": ("coin.jpg", photo)}
            )

        results["visual_search"] = await load(1, args.search_requests, visual_search)
    return results


def main() -> None:
    parser = bench_parser("review_load", __doc__.splitlines()[0])
    parser.add_argument("--specimens", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--requests", type=int, default=20, help="Queue requests per client.")
    parser.add_argument("--identify-requests", type=int, default=5, help="Per client.")
    parser.add_argument("--search-requests", type=int, default=20, help="Visual searches.")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="coinlens-bench-") as folder:
        home = Home.init(Path(folder) / "home")
        run_ingest(home, SAMPLE / "references", manifest=None, status=None, batch=None)
        seconds = synthesise_backlog(home, args.specimens)
        print(f"synthesised {args.specimens:,} backlog specimens in {seconds:.1f} s")
        add_user(home.catalog, "bench", PASSWORD, "reviewer")
        token = create_token(home.catalog, "bench")
        photos = [p.read_bytes() for p in sorted((SAMPLE / "backlog").rglob("*.jpg"))[:40]]
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        server = subprocess.Popen(
            [sys.executable, "-m", "coinlens", "serve", "--home", str(home.settings.home),
             "--port", str(port)]
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(300):
                try:
                    if httpx.get(f"{url}/healthz").status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.2)
            results = asyncio.run(run_load(url, token, args, photos))
        finally:
            server.terminate()
            server.wait()
        home.close()
    report = {
        "benchmark": "review_load",
        "specimens": args.specimens,
        "clients": args.clients,
        "database": "sqlite",
        "results": results,
    }
    write_report(args.out, report)


if __name__ == "__main__":
    main()
