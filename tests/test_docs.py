"""The documentation: every command and setting in the generated reference, the site built with
--strict (a broken link or a page out of the navigation fails), the README short."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from coinlens.cli.reference import (
    api_reference,
    cli_commands,
    cli_reference,
    openapi_schema,
    settings_reference,
)
from coinlens.config.settings import SETTING_HELP, Settings

ROOT = Path(__file__).resolve().parents[1]


def test_every_command_and_option_is_in_the_cli_reference() -> None:
    text = cli_reference()
    commands = cli_commands()
    assert {
        "ingest",
        "identify",
        "train",
        "eval",
        "serve",
        "export",
        "user add",
        "token revoke",
    } <= set(commands)
    for name in commands:
        assert f"## coinlens {name}\n" in text, name
    for option in ("--home", "--group-by", "--upright", "--sides-from-names", "--format"):
        assert f"`{option}`" in text, option


def test_every_setting_is_documented_in_the_code_and_the_reference() -> None:
    names = {f.name for f in dataclasses.fields(Settings)} - {"home", "extra"}
    assert set(SETTING_HELP) == names  # a new setting without its help fails here
    text = settings_reference()
    for name in names:
        assert f"| `{name}` |" in text, name


def test_every_api_route_is_in_the_api_reference() -> None:
    schema = openapi_schema()
    text = api_reference(schema)
    for path, methods in schema["paths"].items():
        for method in methods:
            assert f"## {method.upper()} `{path}`" in text


def test_the_site_builds_strictly_and_the_readme_stays_short(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme) <= 8_000
    assert "make demo" in readme and "make test" in readme
    mkdocs = shutil.which("mkdocs", path=str(Path(sys.executable).parent))
    if mkdocs is None:
        pytest.skip("mkdocs is not installed (pip install -e '.[dev]')")
    copy = tmp_path / "repo"
    shutil.copytree(ROOT / "docs", copy / "docs")
    shutil.copy(ROOT / "mkdocs.yml", copy / "mkdocs.yml")
    built = subprocess.run(
        [mkdocs, "build", "--strict", "--quiet", "--site-dir", str(tmp_path / "site")],
        cwd=copy,
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    cli_page = (tmp_path / "site" / "reference" / "cli" / "index.html").read_text()
    assert "coinlens ingest" in cli_page
    assert "fonts.googleapis" not in (tmp_path / "site" / "index.html").read_text()
