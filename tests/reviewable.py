"""A home ready for review: references, a batch identified by the pretrained model, users and
tokens. Built once per session; each test gets its own copy."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from coinlens.api import create_app
from coinlens.catalog import Home
from coinlens.cli.app import app

SAMPLE = Path(__file__).resolve().parents[1] / "examples" / "euro-coins"
PASSWORD = "correct horse battery"
ROLES = {"ada": "admin", "rita": "reviewer", "vic": "viewer"}


def _copy_subset(source: Path, target: Path, per_type: int) -> Path:
    for folder in sorted(p for p in source.iterdir() if p.is_dir()):
        (target / folder.name).mkdir(parents=True)
        for path in sorted(folder.glob("*.jpg"))[:per_type]:
            shutil.copy(path, target / folder.name / path.name)
    return target


@dataclass
class Reviewable:
    home: Path
    tokens: dict[str, str]
    references: Path
    batch: Path


@pytest.fixture(scope="session")
def reviewable_template(tmp_path_factory: pytest.TempPathFactory) -> Reviewable:
    root = tmp_path_factory.mktemp("reviewable")
    references = _copy_subset(SAMPLE / "references", root / "references", 6)
    batch = _copy_subset(SAMPLE / "backlog", root / "incoming" / "batch-a", 3)
    home = root / "home"
    runner = CliRunner()

    def run(*args: str, stdin: str | None = None) -> str:
        result = runner.invoke(app, [*args, "--home", str(home)], input=stdin)
        assert result.exit_code == 0, result.stderr
        return result.stdout

    run("ingest", str(references))
    run("identify", str(batch))
    tokens = {}
    for name, role in ROLES.items():
        run("user", "add", name, "--role", role, "--password-stdin", stdin=PASSWORD + "\n")
        tokens[name] = run("token", "create", name).strip()
    (root / "tokens.json").write_text(json.dumps(tokens))
    return Reviewable(home, tokens, references, batch)


@dataclass
class Site:
    home: Home
    client: TestClient
    tokens: dict[str, str]
    references: Path
    batch: Path

    def auth(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[name]}"}


def copy_home(template: Reviewable, target: Path) -> Path:
    shutil.copytree(template.home, target)
    return target


@pytest.fixture
def site(reviewable_template: Reviewable, tmp_path: Path) -> Iterator[Site]:
    """The app over a private copy of the reviewable home, with an httpx test client."""
    home = Home.open(copy_home(reviewable_template, tmp_path / "home"))
    with TestClient(create_app(home), base_url="http://127.0.0.1") as client:
        yield Site(
            home,
            client,
            reviewable_template.tokens,
            reviewable_template.references,
            reviewable_template.batch,
        )
    home.close()


def sign_in(client: TestClient, name: str, password: str = PASSWORD) -> None:
    """Sign in through the login form, as a browser does."""
    page = client.get("/login")
    csrf = page.text.split('name="csrf_token" value="')[1].split('"')[0]
    response = client.post(
        "/login",
        data={"name": name, "password": password, "csrf_token": csrf, "next": "/queue"},
        follow_redirects=False,
    )
    assert response.status_code == 303 and response.headers["location"] == "/queue"
