"""What every benchmark script shares: where the data sets are, and the command-line options."""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def bench_parser(name: str, description: str | None) -> argparse.ArgumentParser:
    """``--data`` (the development data sets) and ``--out`` (bench/results/NAME.json)."""
    parser = argparse.ArgumentParser(description=description)
    default_data = Path(os.environ.get("COINLENS_TEST_DATA", REPO.parent / "shared" / "data"))
    parser.add_argument("--data", type=Path, default=default_data)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / f"{name}.json")
    return parser


def write_report(path: Path, report: dict) -> None:
    """Add the machine, print the report, and write it as JSON (write-then-rename)."""
    from coinlens.storage import atomic_write

    report = {**report, "machine": {"cpus": os.cpu_count(), "python": platform.python_version()}}
    print(json.dumps(report, indent=2))
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(report, indent=2) + "\n")
