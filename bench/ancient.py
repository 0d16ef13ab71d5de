"""Ancient coins (``ans-roman``) measured as the mission needs: new coins of known types, and
types never trained on, at coin level with hoard lots never split.

    python bench/ancient.py [--data DIR] [--out JSON] [--work DIR] [--train-args "..."]

Two splits of the manifest, both by whole coins and whole lots:
- known types: lots drawn at random (seed 0) into the test set while each of their types keeps a
  coin in training, up to a fifth of the coins; the model trains on the rest, and the test coins
  are matched against the training coins (``coinlens eval --queries test --group-by lot``);
- new types: a quarter of the types (seed 0) left out of training; their coins are matched
  against every other coin of every type, never one of their own lot.
Each split is scored by the untrained backbone and by the model ``coinlens train`` makes with
``--train-args``; per side and per coin (both sides), with the partial attributions' accuracy
where the exact type was not auto-accepted.
"""

from __future__ import annotations

import csv
import json
import random
import shlex
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

from common import bench_parser, write_report

KEYS = ("n_queries", "n_unanswerable", "top1", "top5", "images_per_second")


def coinlens(*args: str | Path) -> str:
    command = [sys.executable, "-m", "coinlens", *map(str, args)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return done.stdout


def write_manifest(path: Path, header: list[str], rows: list[dict[str, str]], data: Path) -> Path:
    """A manifest of ``rows`` in ``path``'s folder, where links to the set's image folders keep
    the image paths relative (a manifest names images inside its own folder)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for folder in data.iterdir():
        link = path.parent / folder.name
        if folder.is_dir() and not link.exists():
            link.symlink_to(folder.resolve())
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)
    return path


def splits(rows: list[dict[str, str]]) -> dict[str, set[str]]:
    """Accessions of the known-types test coins and of the new types' coins."""
    coins: dict[str, tuple[str, str]] = {
        r["accession"]: (r["type_reference"], r["lot"]) for r in rows
    }
    by_lot: dict[str, list[str]] = defaultdict(list)
    left: dict[str, int] = defaultdict(int)
    for accession, (kind, lot) in coins.items():
        by_lot[lot].append(accession)
        left[kind] += 1
    rng = random.Random(0)
    lots = sorted(by_lot)
    rng.shuffle(lots)
    test: set[str] = set()
    for lot in lots:
        taken: dict[str, int] = defaultdict(int)
        for accession in by_lot[lot]:
            taken[coins[accession][0]] += 1
        if len(test) + len(by_lot[lot]) > len(coins) // 5:
            continue
        if all(left[kind] - n >= 1 for kind, n in taken.items()):
            test.update(by_lot[lot])
            for kind, n in taken.items():
                left[kind] -= n
    kinds = sorted({kind for kind, _ in coins.values()})
    new = set(rng.sample(kinds, len(kinds) // 4))
    return {
        "known_test": test,
        "new_types": {a for a, (kind, _) in coins.items() if kind in new},
    }


def score(summary: dict) -> dict:
    out = {key: summary.get(key) for key in KEYS}
    out["per_coin"] = summary.get("per_coin")
    out["auto_accept"] = summary["at_calibrated_threshold"]
    out["partial"] = summary.get("partial")
    out["by_series"] = summary.get("by_series")
    return out


def evaluate(home: Path, references: Path, queries: Path, out: Path) -> dict:
    started = time.perf_counter()
    coinlens("eval", "--home", home, "--references", references, "--queries", queries,
             "--group-by", "lot", "--json", out)  # fmt: skip
    report = score(json.loads(out.read_text()))
    report["seconds"] = round(time.perf_counter() - started, 1)
    return report


def main() -> None:
    parser = bench_parser("ancient", __doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/coinlens-ancient"))
    parser.add_argument("--train-args", default="", help="options for coinlens train")
    args = parser.parse_args()
    data = args.data / "ans-roman"
    with (data / "manifest.csv").open(encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        header, rows = list(reader.fieldnames or []), list(reader)
    chosen = splits(rows)
    work = args.work
    manifests = {"all": write_manifest(work / "all.csv", header, rows, data)}
    for split, chosen_coins in (("known", chosen["known_test"]), ("new", chosen["new_types"])):
        for part, wanted in (("train", False), ("test", True)):
            manifests[f"{split}_{part}"] = write_manifest(
                work / f"{split}_{part}.csv",
                header,
                [r for r in rows if (r["accession"] in chosen_coins) == wanted],
                data,
            )
    report: dict = {
        "train_args": args.train_args,
        "known_test_coins": len(chosen["known_test"]),
        "new_type_coins": len(chosen["new_types"]),
    }
    for split in ("known", "new"):
        home = work / f"home-{split}"
        if not (home / "trained.json").exists():
            coinlens("ingest", manifests[f"{split}_train"], "--home", home)
            references = manifests["known_train"] if split == "known" else manifests["all"]
            untrained = evaluate(home, references, manifests[f"{split}_test"],
                                 work / f"{split}-untrained.json")  # fmt: skip
            (work / f"{split}-untrained-score.json").write_text(json.dumps(untrained))
            trained = json.loads(
                coinlens("train", "--home", home, "--json", *shlex.split(args.train_args))
            )
            (home / "trained.json").write_text(json.dumps(trained))
        report[f"{split}_untrained"] = json.loads(
            (work / f"{split}-untrained-score.json").read_text()
        )
        references = manifests["known_train"] if split == "known" else manifests["all"]
        report[f"{split}_trained"] = evaluate(
            home, references, manifests[f"{split}_test"], work / f"{split}-trained.json"
        )
        report[f"{split}_training"] = json.loads((home / "trained.json").read_text())
    write_report(args.out, report)


if __name__ == "__main__":
    main()
