"""``coinlens demo``: the whole loop on the bundled sample, in a few minutes on a laptop CPU."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from coinlens.catalog import CatalogError, Home, catalog_counts, specimens_per_type
from coinlens.cli.app import _print_ingest_summary, _print_status, run_ingest
from coinlens.cli.common import HomeOption, app, fail, out
from coinlens.cli.recognition import _print_mapping, print_eval, run_eval, run_identify, run_train
from coinlens.config import SettingsError
from coinlens.storage import StoreError

DEMO_EPOCHS = 8


def find_sample() -> Path | None:
    """The bundled euro-coins sample: next to a source checkout, or where COINLENS_SAMPLE says."""
    candidates = [os.environ.get("COINLENS_SAMPLE")]
    here = Path(__file__).resolve()
    candidates += [str(parent / "examples" / "euro-coins") for parent in here.parents]
    candidates.append(str(Path.cwd() / "examples" / "euro-coins"))
    for candidate in candidates:
        if candidate and (Path(candidate) / "references").is_dir():
            return Path(candidate)
    return None


@app.command()
def demo(
    home: HomeOption = None,
    sample: Annotated[
        Path | None,
        typer.Option(
            "--sample", help="Sample folder \\[default: the bundled examples/euro-coins]."
        ),
    ] = None,
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="Training passes.")] = DEMO_EPOCHS,
) -> None:
    """Ingest the bundled sample, train, identify its backlog and print the evaluation."""
    sample = sample or find_sample()
    if sample is None or not (sample / "references").is_dir():
        fail("the bundled sample (examples/euro-coins) was not found; pass --sample DIR", 2)
    try:
        opened = Home.init(home)
    except (SettingsError, CatalogError, StoreError) as exc:
        fail(str(exc))
    with opened:
        out.rule("coinlens demo")
        out.print(f"sample: {sample}\nhome:   {opened.settings.home}")
        out.rule("1. ingest the catalogued references (the folder is the type)")
        report = run_ingest(opened, sample / "references")
        _print_ingest_summary(report, str(sample / "references"))
        with opened.catalog.reader() as session:
            _print_status(catalog_counts(session), specimens_per_type(session))

        out.rule("2. train on them (held-out coins calibrate the confidence)")
        from coinlens.model.train import TrainConfig

        summary = run_train(opened, TrainConfig(epochs=epochs))
        _print_mapping(f"model version {summary['model_version']}", summary)

        for title, folder in [
            ("3. identify the backlog", sample / "backlog"),
            ("4. identify the coins on tray photos", sample / "trays"),
        ]:
            if folder.is_dir():
                out.rule(title)
                result = run_identify(opened, folder, top_k=3, out_path=None, show=10)
                decisions = result["decisions"]
                out.print(
                    f"{result['specimens']} coins: {decisions['auto_accept']} auto-accept, "
                    f"{decisions['review']} to review, "
                    f"{decisions['possible_new_type']} possible new types"
                )

        out.rule("5. evaluate: references vs the labelled backlog")
        evaluation, folder = run_eval(opened, sample / "references", sample / "backlog", None)
        print_eval(evaluation.summary)
        out.print(f"confusion matrix and worst mistakes in {folder}")
