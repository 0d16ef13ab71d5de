"""Shared fixtures: a fresh home, the CLI, a live localbucket S3 server, real data, test images."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from typer.testing import CliRunner

from coinlens.cli.app import app
from helpers import free_port

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Tests run in parallel workers, one per core: one thread each (and for the commands they
    # start), or OpenMP's spinning threads in torch and faiss fight over the cores.
    os.environ["OMP_NUM_THREADS"] = "1"
    import cv2
    import torch

    torch.set_num_threads(1)
    cv2.setNumThreads(1)

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def shared_data() -> Path:
    return Path(os.environ.get("COINLENS_TEST_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The development data sets; tests that need them skip, saying why, when they are absent."""
    root = shared_data()
    if not (root / "euro-kaa").is_dir():
        pytest.skip(f"development data not found at {root} (set COINLENS_TEST_DATA)")
    return root


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never see the developer's own coinlens or AWS settings."""
    for name in list(os.environ):
        if name.startswith(("COINLENS_", "AWS_")) and name != "COINLENS_TEST_DATA":
            monkeypatch.delenv(name)


@pytest.fixture
def home(tmp_path: Path, database: str) -> Path:  # noqa: F811 - the fixture below
    """A home folder (not created); its catalogue is SQLite or PostgreSQL (``database``)."""
    return tmp_path / "home"


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


@pytest.fixture
def cli() -> Callable[..., CliResult]:
    """Run ``coinlens ARGS`` in-process, with stdout and stderr kept apart."""
    runner = CliRunner()

    def invoke(*args: str | Path, env: dict[str, str] | None = None) -> CliResult:
        result = runner.invoke(app, [str(arg) for arg in args], env=env, catch_exceptions=False)
        return CliResult(result.exit_code, result.stdout, result.stderr)

    return invoke


@dataclass
class S3Server:
    endpoint: str
    root: Path

    def client(self):
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
            config=Config(s3={"addressing_style": "path"}),
        )

    def env_settings(self) -> dict[str, str]:
        """Settings keyword overrides that point coinlens at this server."""
        return {
            "s3_endpoint_url": self.endpoint,
            "s3_access_key_id": "test",
            "s3_secret_access_key": "test",
        }

    def env(self) -> dict[str, str]:
        return {
            "COINLENS_S3_ENDPOINT_URL": self.endpoint,
            "COINLENS_S3_ACCESS_KEY_ID": "test",
            "COINLENS_S3_SECRET_ACCESS_KEY": "test",
        }


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A real localbucket S3 server on 127.0.0.1 for the whole session, stopped at the end."""
    executable = shutil.which("localbucket", path=str(BIN)) or shutil.which("localbucket")
    if executable is None:
        pytest.fail("localbucket is not installed (pip install -e '.[dev]')")
    root = tmp_path_factory.mktemp("localbucket")
    port = free_port()
    process = subprocess.Popen(
        [executable, "--host", "127.0.0.1", "--port", str(port), str(root)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail("localbucket did not start")
            time.sleep(0.05)
    try:
        yield S3Server(f"http://127.0.0.1:{port}", root)
    finally:
        process.terminate()
        process.wait(timeout=10)


_bucket_counter = iter(range(1_000_000))


@pytest.fixture
def bucket(s3_server: S3Server) -> str:
    """A fresh, empty bucket name on the live server (created by the code under test)."""
    return f"test-{os.getpid()}-{next(_bucket_counter)}"


# The reviewable home (users, tokens, a batch with suggestions) for the review, api and export
# tests.
from databases import database, postgres_server  # noqa: E402, F401
from reviewable import reviewable_template, reviewable_templates, site  # noqa: E402, F401
