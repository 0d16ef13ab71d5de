"""The reference pages of the documentation, written from the code itself: every command and
option of the CLI (from the typer app), every setting (from ``Settings``), every route of the REST
API (from the OpenAPI schema). The docs build calls these (``docs/hooks/reference.py``), so the
reference cannot drift from what the code does.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Iterator
from typing import Any

import typer

from coinlens.config.settings import SETTING_HELP, Settings


def _commands(group: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, Any]]:
    """(name, command) of every command below ``group`` (typer's own click classes: read by
    what they hold, not by their class)."""
    if hasattr(group, "commands"):
        for name in sorted(group.commands):
            command = group.commands[name]
            if command.hidden:
                continue
            yield from _commands(command, (*path, name))
    elif path:
        yield " ".join(path), group


def cli_commands() -> list[str]:
    """Every command's name, as typed after ``coinlens`` ("ingest", "user add", ...)."""
    from coinlens.cli.app import app

    return [name for name, _ in _commands(typer.main.get_command(app))]


def _text(value: str | None) -> str:
    return " ".join((value or "").replace("\\[", "[").split())


def _option_row(param: Any) -> str:
    if param.param_type_name == "option":
        names = " / ".join(f"`{o}`" for o in [*param.opts, *param.secondary_opts])
        default = param.default
        shown = "" if default in (None, False, ()) or callable(default) else f"`{default}`"
        return f"| {names} | {_text(param.help)} | {shown} |"
    name = (param.metavar or param.name or "").upper()
    return f"| `{name}` (argument) | {_text(getattr(param, 'help', ''))} | |"


def cli_reference() -> str:
    """Markdown: each command with its help and a table of its arguments and options."""
    from coinlens.cli.app import app

    root = typer.main.get_command(app)
    lines = [
        "# Command line",
        "",
        "Every `coinlens` command, generated from the program itself. Every command takes "
        "`--home DIR` (or `COINLENS_HOME`). Exit codes: 0 success, 1 the command failed, 2 bad "
        "usage or bad input that stopped the command.",
        "",
    ]
    for name, command in _commands(root):
        lines += [f"## coinlens {name}", "", _text(command.help) or "", ""]
        params = [p for p in command.params if p.name != "help"]
        if params:
            lines += ["| argument / option | meaning | default |", "|---|---|---|"]
            lines += [_option_row(p) for p in params]
            lines.append("")
    return "\n".join(lines)


def settings_reference() -> str:
    """Markdown: each setting with its default and meaning."""
    lines = [
        "# Settings",
        "",
        "Set in `HOME/coinlens.toml` (written by `coinlens init`, every line commented) or as "
        "`COINLENS_<NAME>` environment variables, which win. Generated from the settings code.",
        "",
        "| setting | default | meaning |",
        "|---|---|---|",
    ]
    for field in dataclasses.fields(Settings):
        if field.name not in SETTING_HELP:
            continue
        default = field.default if field.default is not dataclasses.MISSING else None
        shown = f"`{default}`" if default not in (None, "") else "(none)"
        lines.append(f"| `{field.name}` | {shown} | {SETTING_HELP[field.name]} |")
    return "\n".join(lines) + "\n"


def openapi_schema() -> dict[str, Any]:
    """The REST API's OpenAPI schema, from an app over a throwaway home."""
    from coinlens.api import create_app
    from coinlens.catalog import Home

    with tempfile.TemporaryDirectory(prefix="coinlens-docs-") as folder:
        home = Home.init(folder)
        try:
            return create_app(home).openapi()
        finally:
            home.close()


def api_reference(schema: dict[str, Any] | None = None) -> str:
    """Markdown: each route of ``/api/v1`` with its description, parameters and body."""
    schema = schema or openapi_schema()
    lines = [
        "# REST API",
        "",
        "Every route of `/api/v1`, generated from the server's OpenAPI schema (served live at "
        "`/docs` and `/redoc`). Authenticate with `Authorization: Bearer <token>` (`coinlens "
        'token create NAME`); errors answer JSON `{"error": "..."}`.',
        "",
    ]
    components = schema.get("components", {}).get("schemas", {})
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            lines += [f"## {method.upper()} `{path}`", ""]
            description = operation.get("description") or operation.get("summary") or ""
            lines += [_text(description), ""]
            parameters = operation.get("parameters", [])
            if parameters:
                lines += ["| parameter | in | meaning |", "|---|---|---|"]
                for parameter in parameters:
                    meaning = _text(
                        parameter.get("description") or parameter["schema"].get("title")
                    )
                    lines.append(f"| `{parameter['name']}` | {parameter['in']} | {meaning} |")
                lines.append("")
            body = operation.get("requestBody", {}).get("content", {})
            for media, content in body.items():
                reference = content.get("schema", {}).get("$ref", "")
                model = components.get(reference.rsplit("/", 1)[-1], {})
                fields = ", ".join(f"`{name}`" for name in model.get("properties", {}))
                lines += [f"Body ({media}): {fields}" if fields else f"Body: {media}", ""]
    return "\n".join(lines)
