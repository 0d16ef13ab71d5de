"""Ingest throughput: euro-kaa ``train/`` (1,291 crops) into a fresh home, local folder and S3.

Prints and writes JSON (``bench/results/ingest.json``). The S3 run uses a real localbucket server
on 127.0.0.1, started and stopped here. Usage: ``python bench/ingest.py [--data DIR] [--repeat N]``.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from coinlens.catalog import Home
from coinlens.ingest import ingest_items, scan_folder
from coinlens.storage import atomic_write
from common import bench_parser


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_localbucket(root: Path) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    executable = shutil.which("localbucket", path=str(Path(sys.executable).parent))
    process = subprocess.Popen(
        [executable or "localbucket", "--port", str(port), str(root)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("localbucket did not start")


def run_once(folder: Path, workdir: Path, **overrides: str) -> dict:
    home = Home.init(workdir / "home", **overrides)
    with home:
        scan = scan_folder(folder)
        started = time.perf_counter()
        report = ingest_items(
            scan.items, home.catalog, home.store, home.settings, target=str(folder)
        )
        seconds = time.perf_counter() - started
        started = time.perf_counter()
        again = ingest_items(scan.items, home.catalog, home.store, home.settings, target="rerun")
        rerun_seconds = time.perf_counter() - started
    assert report.ingested == len(scan.items), report.problems[:3]
    assert again.already_present == len(scan.items)
    return {
        "images": report.ingested,
        "seconds": round(seconds, 2),
        "images_per_second": round(report.ingested / seconds, 1),
        "rerun_seconds": round(rerun_seconds, 2),
        "rerun_images_per_second": round(len(scan.items) / rerun_seconds, 1),
    }


def main() -> None:
    parser = bench_parser("ingest", __doc__)
    parser.add_argument("--repeat", type=int, default=2, help="runs per store; best is kept")
    args = parser.parse_args()
    folder = args.data / "euro-kaa" / "train"
    if not folder.is_dir():
        sys.exit(f"bench/ingest.py: {folder} not found (pass --data DIR)")

    results: dict = {
        "benchmark": "ingest euro-kaa/train into a fresh home",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "runs": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        runs = []
        for index in range(args.repeat):
            runs.append(run_once(folder, tmp_path / f"local{index}"))
        results["runs"]["sqlite+local_folder"] = max(runs, key=lambda r: r["images_per_second"])
        process, endpoint = _start_localbucket(tmp_path / "buckets")
        try:
            runs = []
            for index in range(args.repeat):
                runs.append(
                    run_once(
                        folder,
                        tmp_path / f"s3{index}",
                        store_url=f"s3://bench{index}/coinlens",
                        s3_endpoint_url=endpoint,
                        s3_access_key_id="bench",
                        s3_secret_access_key="bench",
                    )
                )
            results["runs"]["sqlite+s3_localbucket"] = max(
                runs, key=lambda r: r["images_per_second"]
            )
        finally:
            process.terminate()
            process.wait(timeout=10)
    text = json.dumps(results, indent=2)
    print(text)
    atomic_write(args.out, text + "\n")


if __name__ == "__main__":
    main()
