"""A home ready for review: references, a batch identified by the pretrained model, users and
tokens. Built once per session; each test gets its own copy."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from coinlens.api import create_app
from coinlens.catalog import Home
from coinlens.cli.app import app
from databases import catalogue_url_for, point_home_at

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
    database: str | None = None  # the PostgreSQL template database, if on PostgreSQL


def build_reviewable(root: Path, url: str | None) -> Reviewable:
    references = _copy_subset(SAMPLE / "references", root / "references", 6)
    batch = _copy_subset(SAMPLE / "backlog", root / "incoming" / "batch-a", 3)
    home = root / "home"
    if url:
        point_home_at(home, url)
    runner = CliRunner()

    def run(*args: str, stdin: str | None = None) -> str:
        # Built lazily inside some test: whatever database that test chose must not leak in.
        env = {"COINLENS_DATABASE_URL": url or ""}
        result = runner.invoke(app, [*args, "--home", str(home)], input=stdin, env=env)
        assert result.exit_code == 0, result.stderr
        return result.stdout

    run("ingest", str(references))
    run("identify", str(batch))
    tokens = {}
    for name, role in ROLES.items():
        run("user", "add", name, "--role", role, "--password-stdin", stdin=PASSWORD + "\n")
        tokens[name] = run("token", "create", name).strip()
    (root / "tokens.json").write_text(json.dumps(tokens))
    return Reviewable(home, tokens, references, batch, url.rsplit("/", 1)[1] if url else None)


@pytest.fixture(scope="session")
def reviewable_templates(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Callable[[str], Reviewable]:
    """The reviewable home on an engine, built the first time it is asked for."""
    built: dict[str, Reviewable] = {}

    def get(engine: str) -> Reviewable:
        if engine not in built:
            url = catalogue_url_for(request, engine)
            built[engine] = build_reviewable(tmp_path_factory.mktemp(f"reviewable-{engine}"), url)
        return built[engine]

    return get


@pytest.fixture(scope="session")
def reviewable_template(reviewable_templates) -> Reviewable:
    return reviewable_templates("sqlite")


@dataclass
class Site:
    home: Home
    client: TestClient
    tokens: dict[str, str]
    references: Path
    batch: Path

    def auth(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[name]}"}


def copy_home(template: Reviewable, target: Path, url: str | None = None) -> Path:
    """A private copy of the template home (its store; its catalogue at ``url`` if given)."""
    shutil.copytree(template.home, target)
    if url:
        point_home_at(target, url)
    return target


@pytest.fixture
def site(
    reviewable_templates,
    database: str,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> Iterator[Site]:
    """The app over a private copy of the reviewable home, with an httpx test client; on each
    catalogue engine."""
    reviewable_template = reviewable_templates(database)
    url = catalogue_url_for(request, database, template=reviewable_template.database)
    if url:  # the environment outranks the settings file: point both at the copy
        monkeypatch.setenv("COINLENS_DATABASE_URL", url)
    home = Home.open(copy_home(reviewable_template, tmp_path / "home", url))
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
