"""Refit a trained home's calibration with the installed coinlens and evaluate both.

    python recalibrate.py HOME TASK [TASK ...]     TASK: kaa | studio | nt

The held-out split, embeddings, re-lit coins and every scoring weight are computed as
``coinlens train`` does (``coinlens.identify.training.calibrate``); the stored calibration and the
refitted one are then scored with the same ``evaluate`` as ``coinlens eval``. Reads
``../shared/data`` (euro-kaa, euro-studio); prints one line per task and calibration.
"""

import json
import sys
from pathlib import Path

from coinlens.catalog import Home
from coinlens.identify import training
from coinlens.identify.engine import current_model
from coinlens.identify.evaluate import evaluate, load_labelled

DATA = Path(__file__).resolve().parents[4] / ".." / "shared" / "data"


TASKS = ("kaa", "studio", "nt")


def main(home_path: str, tasks: list[str]) -> None:
    home = Home.open(home_path)
    model = current_model(home)
    stored = model.calibration
    refs = training.catalogued_crops(home)
    train, heldout = training.split_heldout(refs, 0.15)
    embedder = model.embedder
    train_embedded = training.embed_refs(home, embedder, train)
    heldout_embedded = training.embed_refs(home, embedder, heldout)
    refitted, _ = training.calibrate(
        training.build_index(train, train_embedded),
        heldout,
        heldout_embedded[0],
        query_cues=heldout_embedded[1],
        target_precision=stored.target_precision,
        verifier=training.store_verifier(home),
        store=home.store,
        relit_queries=training.relit_coins(home.store, heldout, embedder.input_size, embedder),
    )
    size = embedder.input_size
    kaa_train = load_labelled(DATA / "euro-kaa" / "train", size)
    kaa_test = load_labelled(DATA / "euro-kaa" / "test", size)
    for task in tasks:
        if task == "kaa":
            references, queries = kaa_train, kaa_test
        elif task == "studio":
            references, queries = load_labelled(DATA / "euro-studio", size), kaa_test
        else:
            references, queries = kaa_train, kaa_test.only({"2c", "20c"})
        for name, calibration in (("stored", stored), ("refitted", refitted)):
            model.calibration = calibration
            summary = evaluate(model, references, queries).summary
            keys = ("top1", "coverage_at_precision", "calibration_error", "at_calibrated_threshold")
            print(task, name, json.dumps({k: summary[k] for k in keys}), flush=True)


if __name__ == "__main__":
    unknown = [task for task in sys.argv[2:] if task not in TASKS]
    if len(sys.argv) < 3 or unknown:
        sys.exit(f"usage: recalibrate.py HOME TASK [TASK ...] with TASK in {', '.join(TASKS)}")
    main(sys.argv[1], sys.argv[2:])
