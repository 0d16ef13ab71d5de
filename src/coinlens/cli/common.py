"""What every command shares: the app, consoles, --home, one-line errors, progress bars."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from coinlens.catalog import CatalogError, Home
from coinlens.config import SettingsError
from coinlens.storage import StoreError

app = typer.Typer(
    name="coinlens",
    help="Catalogue museum coin collections from photographs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# No markup: paths, file names and type names are printed as they are ("coin [old].jpg" kept,
# "[/x]" no crash); the progress bars' own columns still style themselves.
out = Console(markup=False)
err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)

HomeOption = Annotated[
    Path | None,
    typer.Option(
        "--home",
        envvar="COINLENS_HOME",
        help="Folder for settings, SQLite catalogue and local store \\[default: ./coinlens-data].",
        show_default=False,
    ),
]


EngineOption = Annotated[
    str,
    typer.Option(
        "--engine",
        help="local, or ray (localisation and embedding on a Ray cluster: pip install .\\[ray]).",
    ),
]
SidesOption = Annotated[
    bool,
    typer.Option(
        "--sides-from-names",
        help="A file whose name ends with a side (A1_obv.jpg, A1_rev.jpg; also _o, -r, "
        ".reverse...) is that side of the coin named before it: one specimen, both sides.",
    ),
]
AddressOption = Annotated[
    str | None,
    typer.Option(
        "--address", help="Ray cluster address (ray://host:10001) \\[default: start a local Ray]."
    ),
]


def check_engine(engine: str) -> str:
    if engine not in ("local", "ray"):
        fail(f"--engine {engine!r}: use local or ray", 2)
    return engine


def ray_preparation(opened: Home, engine: str, address: str | None) -> Any:
    """The Ray engine's photo preparation for ``ingest_items``, or None for the local one."""
    if engine != "ray":
        return None
    from coinlens.identify.distributed import RayPreparation

    return RayPreparation(opened.settings, opened.catalog, address=address)


def fail(message: str, code: int = 1) -> NoReturn:
    """Stop the command: one line on stderr naming what is wrong, then exit with ``code``."""
    print_error(message)
    raise typer.Exit(code)


def open_home(home: Path | None) -> Home:
    try:
        return Home.open(home)
    except (SettingsError, CatalogError, StoreError) as exc:
        fail(str(exc), 2 if isinstance(exc, SettingsError) else 1)


def print_error(message: str) -> None:
    err.print(f"coinlens: error: {message}")


def ingest_progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]} img/s"),
        TextColumn("[red]{task.fields[failed]} failed"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=False,
    )


def stage_progress() -> Progress:
    """A bar for model work: a stage name, counts, a note (loss, rate) and times."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[note]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
    )
