"""``bench/index.py``: a small run writes its JSON; bad arguments stop at once with a usage line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "index.py"


def run_bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300
    )


def test_a_small_run_writes_recall_and_speed(tmp_path: Path) -> None:
    out = tmp_path / "index.json"
    done = run_bench("--sizes", "50", "--queries", "4", "--dim", "8", "--out", str(out))
    assert done.returncode == 0, done.stderr
    (run,) = json.loads(out.read_text())["runs"]
    assert run["references"] == 50 and run["queries"] == 4
    assert 0.0 <= run["hnsw_ef64"]["recall_at_10"] <= 1.0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sizes", "abc"], "expected comma-separated whole numbers, got 'abc'"),
        (["--sizes", "5"], "recall@10 needs at least 10 references, got 5"),
        (["--sizes", "50", "--dim", "0"], "--queries and --dim must be at least 1"),
    ],
)
def test_bad_arguments_get_one_usage_error(tmp_path: Path, args: list[str], message: str) -> None:
    out = tmp_path / "index.json"
    done = run_bench(*args, "--out", str(out))
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr
    assert not out.exists()
