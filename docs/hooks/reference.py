"""MkDocs hook: write the generated reference pages (CLI, settings, REST API) before the build,
from the code itself (``coinlens.cli.reference``), so that they cannot drift from it."""

from __future__ import annotations

from pathlib import Path

from coinlens.cli.reference import api_reference, cli_reference, settings_reference

PAGES = {
    "reference/cli.md": cli_reference,
    "reference/settings.md": settings_reference,
    "reference/api.md": api_reference,
}


def on_pre_build(config, **_: object) -> None:
    docs = Path(config["docs_dir"])
    for name, make in PAGES.items():
        path = docs / name
        text = make()
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
