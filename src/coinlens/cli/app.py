"""The ``coinlens`` command: each command is a thin shell over the layers below.

Exit codes (DESIGN.md): 0 success, 1 the command failed, 2 bad usage or bad input that stopped it.
Errors are one line on stderr naming the file or value and what is wrong.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from coinlens import __version__
from coinlens.catalog import CatalogError, Home, catalog_counts, specimens_per_type
from coinlens.cli.common import (
    AddressOption,
    EngineOption,
    HomeOption,
    SidesOption,
    app,
    check_engine,
    err,
    fail,
    ingest_progress,
    open_home,
    out,
    print_error,
    ray_preparation,
)
from coinlens.config import SettingsError
from coinlens.ingest import (
    IngestError,
    IngestReport,
    Outcome,
    ingest_items,
    is_bucket_url,
    read_manifest,
    scan_bucket,
    scan_folder,
)
from coinlens.storage import StoreError


def _version(value: bool) -> None:
    if value:
        out.print(f"coinlens {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """Catalogue museum coin collections from photographs."""


@app.command()
def init(home: HomeOption = None) -> None:
    """Create a coinlens home: settings file, catalogue database and object store."""
    try:
        opened = Home.init(home)
    except (SettingsError, CatalogError, StoreError) as exc:
        fail(str(exc))
    with opened:
        out.print(f"coinlens home ready at {opened.settings.home}")
        out.print(f"  catalogue: {opened.catalog.engine.url.render_as_string(hide_password=True)}")
        out.print(f"  store:     {opened.store.url}")


@app.command()
def status(
    home: HomeOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the counts as JSON.")] = False,
) -> None:
    """Counts of types, specimens by status, images and model versions."""
    with open_home(home) as opened, opened.catalog.reader() as session:
        counts = catalog_counts(session)
        per_type = specimens_per_type(session) if not as_json else []
    if as_json:
        print(json.dumps(counts))
        return
    _print_status(counts, per_type)


def _print_status(counts: dict[str, Any], per_type: list[tuple[str, int]]) -> None:
    table = Table(title="coinlens catalogue", show_header=False)
    table.add_row("types", str(counts["types"]))
    for name, value in counts["specimens"].items():
        table.add_row(f"specimens {name}", str(value))
    table.add_row("images", str(counts["images"]))
    table.add_row("model versions", str(counts["models"]))
    out.print(table)
    if per_type:
        types = Table(title="catalogued specimens per type")
        types.add_column("type")
        types.add_column("specimens", justify="right")
        for reference, count in per_type:
            types.add_row(reference, str(count))
        out.print(types)


def run_ingest(
    opened: Home,
    path: Path | str,
    *,
    manifest: Path | None = None,
    status: str | None = None,
    batch: str | None = None,
    engine: str = "local",
    address: str | None = None,
    sides_from_names: bool = False,
) -> IngestReport:
    """Scan ``path`` (a folder, or ``s3://bucket/prefix``; or read ``manifest``) and ingest it,
    with a progress bar and errors; ``engine="ray"`` reads and localises the photos on Ray."""
    if manifest is not None:
        scan = read_manifest(manifest, status=status, batch=batch)
        target = str(manifest.resolve())
    elif is_bucket_url(str(path)):
        scan = scan_bucket(
            str(path),
            opened.settings,
            status=status,
            batch=batch,
            sides_from_names=sides_from_names,
        )
        target = str(path)
    else:
        path = Path(path)
        scan = scan_folder(path, status=status, batch=batch, sides_from_names=sides_from_names)
        target = str(path.resolve())
    for problem in scan.problems:
        print_error(str(problem))
    progress = ingest_progress()
    task = progress.add_task("ingest", total=len(scan.items), rate="-", failed=0)
    failed = 0

    def on_outcome(outcome: Outcome) -> None:
        nonlocal failed
        if outcome.status == "failed":
            failed += 1
            print_error(f"{outcome.item.origin}: {outcome.message}")  # above the bar: one console
        elapsed = progress.tasks[task].elapsed or 0.0
        done = progress.tasks[task].completed + 1
        rate = f"{done / elapsed:.1f}" if elapsed > 0 else "-"
        progress.update(task, advance=1, rate=rate, failed=failed)

    preparation = ray_preparation(opened, engine, address)
    with progress:
        report = ingest_items(
            scan.items,
            opened.catalog,
            opened.store,
            opened.settings,
            target=target,
            problems=scan.problems,
            ignored=len(scan.ignored),
            on_outcome=on_outcome,
            preparation=preparation,
        )
    for note in report.notes[:20]:
        err.print(f"coinlens: note: {note}")
    if len(report.notes) > 20:
        err.print(f"coinlens: note: ... and {len(report.notes) - 20} more notes")
    return report


def _print_ingest_summary(report: IngestReport, source: str) -> None:
    table = Table(title=f"ingest summary: {source}", show_header=False)
    rows = [
        ("images found", report.found),
        ("ingested", report.ingested),
        ("coins found in them", report.coins),
        ("already in the catalogue (skipped)", report.already_present),
        ("failed (see errors above)", report.failed),
        ("manifest rows skipped (see errors above)", report.rows_skipped),
        ("non-image files ignored", report.ignored_files),
        ("same picture as another specimen (stored once)", report.shared_content),
        ("new types", report.new_types),
        ("new specimens", report.new_specimens),
    ]
    for label, value in rows:
        table.add_row(label, str(value))
    table.add_row("time", f"{report.seconds:.1f} s ({report.images_per_second:.1f} images/s)")
    out.print(table)
    if report.found and not report.ingested and report.already_present == report.found:
        out.print("nothing new: every image is already in the catalogue")


@app.command()
def ingest(
    path: Annotated[
        str, typer.Argument(help="Folder of images, or s3://bucket/prefix (folders are labels).")
    ],
    home: HomeOption = None,
    manifest: Annotated[
        Path | None,
        typer.Option("--manifest", help="CSV manifest; image paths are relative to the CSV."),
    ] = None,
    status: Annotated[
        str | None,
        typer.Option(
            "--status",
            help="catalogued or backlog \\[default: catalogued where a type label is known].",
            show_default=False,
        ),
    ] = None,
    batch: Annotated[
        str | None,
        typer.Option("--batch", help="Batch name for the review queue \\[default: folder name]."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    engine: EngineOption = "local",
    address: AddressOption = None,
    sides_from_names: SidesOption = False,
) -> None:
    """Ingest photos and catalogue data from a folder tree or a CSV manifest."""
    usage_errors: tuple[type[Exception], ...] = (IngestError,)
    if check_engine(engine) == "ray":  # the model stack loads only for the Ray engine
        from coinlens.identify.distributed import RayUnavailable

        usage_errors = (IngestError, RayUnavailable)
    if status not in (None, "catalogued", "backlog"):
        fail(f"--status {status!r} must be catalogued or backlog", 2)
    if manifest is None and path.lower().endswith(".csv") and Path(path).is_file():
        manifest = Path(path)
    if manifest is not None and sides_from_names:
        fail(
            "--sides-from-names reads the sides from file names; a manifest has its side column", 2
        )
    with open_home(home) as opened:
        try:
            report = run_ingest(
                opened,
                path,
                manifest=manifest,
                status=status,
                batch=batch,
                engine=engine,
                address=address,
                sides_from_names=sides_from_names,
            )
        except usage_errors as exc:
            fail(str(exc), 2)
        except (StoreError, CatalogError) as exc:
            fail(str(exc), 1)
        except KeyboardInterrupt:
            err.print("coinlens: interrupted; what was ingested is kept, re-run to finish")
            raise typer.Exit(130) from None
    if as_json:
        print(json.dumps(report.as_dict()))
    else:
        _print_ingest_summary(report, str(manifest or path))
    if report.found == 0 and not report.problems:
        fail(f"{manifest or path}: no images found", 2)
    if report.ingested == 0 and report.already_present == 0:
        fail(f"{manifest or path}: nothing could be ingested ({len(report.problems)} problems)", 2)


# Register the commands kept in their own modules: train, identify, eval, demo, serve, user,
# token, export.
from coinlens.cli import demo, recognition, team  # noqa: E402, F401


def main() -> None:
    """Console-script entry point."""
    app()
