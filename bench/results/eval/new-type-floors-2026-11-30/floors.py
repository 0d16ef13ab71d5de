"""Refit a trained home's calibration at several new-type shares and evaluate each.

    python floors.py HOME TASK SHARES      TASK: nt | kaa | studio; SHARES: e.g. 0,0.1,0.2

The held-out split, embeddings, re-lit coins and every scoring weight are computed as
``coinlens train`` does (``coinlens.identify.training.calibrate``, with ``new_type_share``);
each calibration is scored with the same ``evaluate`` as ``coinlens eval``, references kaa
``train/`` (``nt``: without 2c and 20c, the types the new-type models never saw) and queries all
of kaa ``test/``; with ``nt`` the 2c and 20c queries are the ``unknown`` ones; ``studio``:
references all of euro-studio instead. One JSON line per share. Reads ``../shared/data``.
"""

import json
import sys
import time
from pathlib import Path

from coinlens.catalog import Home
from coinlens.identify import training
from coinlens.identify.engine import current_model
from coinlens.identify.evaluate import evaluate, load_labelled

DATA = Path(__file__).resolve().parents[4] / ".." / "shared" / "data"
KNOWN = {"1c", "5c", "10c", "50c", "1e", "2e"}  # the new-type models' types


def main(home_path: str, task: str, shares: list[float]) -> None:
    home = Home.open(home_path)
    model = current_model(home)
    embedder = model.embedder
    refs = training.catalogued_crops(home)
    train, heldout = training.split_heldout(refs, 0.15)
    index = training.build_index(train, training.embed_refs(home, embedder, train))
    vectors, cues = training.embed_refs(home, embedder, heldout)
    relit = training.relit_coins(home.store, heldout, embedder.input_size, embedder)
    folder = DATA / "euro-studio" if task == "studio" else DATA / "euro-kaa" / "train"
    references = load_labelled(folder, embedder.input_size)
    if task == "nt":
        references = references.only(KNOWN)
    queries = load_labelled(DATA / "euro-kaa" / "test", embedder.input_size)
    for share in shares:
        started = time.perf_counter()
        calibration, _ = training.calibrate(
            index,
            heldout,
            vectors,
            query_cues=cues,
            target_precision=0.98,
            new_type_share=share,
            verifier=training.store_verifier(home),
            store=home.store,
            relit_queries=relit,
        )
        seconds = round(time.perf_counter() - started)
        model.calibration = calibration
        summary = evaluate(model, references, queries).summary
        print(
            json.dumps(
                {
                    "home": home_path,
                    "share": share,
                    "cal_s": seconds,
                    "floors": {str(t): round(f, 3) for t, f in calibration.type_floors.items()},
                    "familiar": round(calibration.familiar_similarity, 3),
                    "threshold": round(calibration.accept_threshold, 4),
                    "heldout_as_new_accepted": calibration.heldout_as_new_accepted,
                    "heldout_cov": calibration.heldout_coverage_at_threshold,
                    "heldout_prec": calibration.heldout_precision_at_threshold,
                    "top1": summary["top1"],
                    "known": summary["at_calibrated_threshold"],
                    "unknown": summary["unknown_types"],
                    "decisions": summary["decisions"],
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[2] not in ("nt", "kaa", "studio"):
        sys.exit("usage: floors.py HOME nt|kaa|studio SHARES (comma-separated, e.g. 0,0.1,0.2)")
    main(sys.argv[1], sys.argv[2], [float(x) for x in sys.argv[3].split(",")])
