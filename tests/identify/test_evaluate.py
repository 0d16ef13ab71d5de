"""Labelled folders as ``coinlens eval`` reads them."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

from coinlens.identify.evaluate import EvalResult, LabelledSet, mistakes_html, per_type_report
from reviewable import SAMPLE


def test_a_labelled_set_keeps_only_some_types_with_all_their_crops() -> None:
    """References a catalogue of fewer types would hold: each kept photo with both its sides,
    its pair photo and its flags, renumbered in order."""
    labelled = LabelledSet()
    for group, (label, sides) in enumerate([("2c", 1), ("20c", 2), ("2c", 2), ("1e", 1)]):
        labelled.paths.append(Path(f"{label}/{group}.jpg"))
        labelled.labels.append(label)
        labelled.shas.append(f"sha{group}")
        labelled.coins.append(f"coin{group}")
        labelled.units.append(f"lot{group % 2}")
        labelled.keypoint_pictures[group] = f"picture{group}".encode()
        for side in range(sides):
            labelled.crops.append(np.full((4, 4, 3), 10 * group + side, np.uint8))
            labelled.keypoint_crops.append(f"crop{group}.{side}".encode())
            labelled.rounds.append(side == 0)
            labelled.framed.append(group % 2 == 0)
            labelled.group_of_crop.append(group)
    kept = labelled.only({"2c", "1e"})
    assert kept.labels == ["2c", "2c", "1e"] and kept.shas == ["sha0", "sha2", "sha3"]
    assert kept.coins == ["coin0", "coin2", "coin3"] and kept.units == ["lot0", "lot0", "lot1"]
    assert kept.groups == [[0], [1, 2], [3]]
    assert [int(c[0, 0, 0]) for c in kept.crops] == [0, 20, 21, 30]
    assert kept.keypoint_crops == [b"crop0.0", b"crop2.0", b"crop2.1", b"crop3.0"]
    assert kept.rounds == [True, True, False, True] and kept.framed == [True, True, True, False]
    assert kept.keypoint_pictures == {0: b"picture0", 1: b"picture2", 2: b"picture3"}
    assert labelled.only(set()).paths == [] and len(labelled.crops) == 6  # the source untouched


def test_each_type_has_its_own_numbers_weakest_first() -> None:
    names = ["10c", "20c", "50c"]
    truths = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    suggested = np.array([0, 0, 1, 2, 1, 1, 2, -1])  # the last query got no suggestion at all
    in_top5 = np.array([1, 1, 1, 0, 1, 1, 1, 0], dtype=bool)
    accepted = np.array([1, 0, 1, 0, 1, 0, 1, 0], dtype=bool)
    report = per_type_report(names, truths, suggested, in_top5, accepted)
    by_type = {row["type"]: row for row in report}
    # weakest first: top-1 0.5 (precision 0.5), 0.5 (precision 1.0), 1.0
    assert [row["type"] for row in report] == ["50c", "10c", "20c"]
    assert by_type["10c"] == {
        "type": "10c",
        "queries": 4,
        "top1": 0.5,
        "top5": 0.75,
        "suggested": 2,
        "precision": 1.0,
        "auto_accepted": 1,
        "auto_accept_precision": 1.0,
        "mistaken_for": {"20c": 1, "50c": 1},
    }
    # a 10 cent coin auto-accepted as 20 cent: 20 cent's accepted suggestions are half right
    assert by_type["20c"]["precision"] == 0.6667
    assert by_type["20c"]["auto_accept_precision"] == 0.5
    assert by_type["50c"]["mistaken_for"] == {}  # no suggestion is no type
    assert sum(row["queries"] for row in report) == len(truths)


def test_a_types_auto_accept_floor_guards_that_type_whatever_its_number(tmp_path: Path) -> None:
    """The calibration's per-type floors name the catalogue's type ids; ``coinlens eval``
    numbers the labels of its folders by name. A floor must follow its type, not its number."""
    import shutil

    from coinlens.catalog import Home
    from coinlens.identify.engine import current_model
    from coinlens.identify.evaluate import evaluate, load_labelled
    from coinlens.identify.scoring import Calibration

    sample = Path(__file__).resolve().parents[2] / "examples" / "euro-coins"
    for part, source, count in (("refs", "references", 4), ("queries", "backlog", 3)):
        for label in ("1c", "2e", "5c"):
            (tmp_path / part / label).mkdir(parents=True)
            for path in sorted((sample / source / label).glob("*.jpg"))[:count]:
                shutil.copy(path, tmp_path / part / label / path.name)
    with Home.init(tmp_path / "home") as home:
        model = current_model(home)  # the pretrained backbone
    size = model.embedder.input_size
    references = load_labelled(tmp_path / "refs", size)
    queries = load_labelled(tmp_path / "queries", size)
    # The catalogue numbered its types otherwise (the labels here: 0 1c, 1 2e, 2 5c); a coin
    # suggested as 2 euro must be closer than any coin can be.
    model.type_references = {0: "5c", 1: "1c", 2: "2e"}
    model.calibration = Calibration(accept_threshold=0.0, type_floors={2: 1.01})
    summary = evaluate(model, references, queries).summary
    by_type = {row["type"]: row for row in summary["per_type"]}
    assert by_type["2e"]["suggested"] > 0 and by_type["2e"]["auto_accepted"] == 0
    others = [by_type[label] for label in ("1c", "5c") if by_type[label]["suggested"]]
    assert others and all(row["auto_accepted"] == row["suggested"] for row in others)
    assert summary["decisions"]["auto_accept"] == sum(row["suggested"] for row in others)


def test_eval_reads_the_photos_as_identify_does(cli, home: Path, tmp_path: Path) -> None:
    """The numbers eval gives are those identify earns on the same photos: the same crops (as
    ingest stores them), matches and decisions, coin for coin."""
    references, queries = tmp_path / "refs", tmp_path / "queries"
    for name in ("1c", "10c", "20c", "2e"):
        for folder, source, count in ((references, "references", 6), (queries, "backlog", 5)):
            (folder / name).mkdir(parents=True)
            for path in sorted((SAMPLE / source / name).glob("*.jpg"))[:count]:
                shutil.copy(path, folder / name / path.name)
    assert cli("init", "--home", home).exit_code == 0
    assert cli("ingest", references, "--home", home).exit_code == 0
    # identify first: it fits the untrained backbone's calibration on the catalogue, which eval
    # then uses too (eval alone on an untrained home has the default calibration)
    identified = cli("identify", queries, "--home", home, "--out", tmp_path / "out.jsonl")
    assert identified.exit_code == 0, identified.stderr
    measured = cli("eval", "--home", home, "--references", references, "--queries", queries,
                   "--json", tmp_path / "eval.json")  # fmt: skip
    assert measured.exit_code == 0, measured.stderr
    summary = json.loads((tmp_path / "eval.json").read_text())
    records = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    right = [r["suggestions"][0]["type"] == Path(r["source"]).parent.name for r in records]
    assert summary["n_queries"] == len(records) == 20
    assert summary["top1"] == round(sum(right) / len(right), 4)
    decided = Counter(r["decision"] for r in records)
    assert summary["decisions"] == {d: decided[d] for d in summary["decisions"]}


def test_eval_tells_queries_whose_own_coin_is_among_the_references_apart(
    cli, home: Path, tmp_path: Path
) -> None:
    """A rescan of a photo (other size, other bytes) is found by keypoints whatever the model
    knows of its type: eval counts the queries that had their own coin among the references
    apart from those shown only other coins of their type (the sample's tray photos show some
    coins twice, so the coins here are chosen distinct)."""
    folder = tmp_path / "loo"
    distinct = {  # four coins of each type, no two the same coin (at most 6 keypoint inliers)
        "10c": ("train_10_15", "train_12_26", "train_13_24", "train_1_11"),
        "20c": ("train_10_1", "train_13_23", "train_15_2", "train_18_10"),
        "2e": ("train_10_12", "train_12_2", "train_13_5", "train_14_11"),
        "5c": ("train_10_10", "train_11_2", "train_12_13", "train_13_16"),
    }
    for name, stems in distinct.items():
        (folder / name).mkdir(parents=True)
        for stem in stems:
            shutil.copy(SAMPLE / "references" / name / f"{stem}.jpg", folder / name)
    for name in ("10c", "2e"):  # one photo of each rescanned at 85%, saved anew
        path = folder / name / f"{distinct[name][0]}.jpg"
        with Image.open(path) as image:
            smaller = image.resize((image.width * 85 // 100, image.height * 85 // 100))
            smaller.save(path.with_name(f"rescan-{path.name}"), quality=88)
    assert cli("init", "--home", home).exit_code == 0
    report = tmp_path / "loo.json"
    result = cli("eval", "--references", folder, "--leave-one-out", "--home", home,
                 "--json", report)  # fmt: skip
    assert result.exit_code == 0, result.stderr
    summary = json.loads(report.read_text())
    assert summary["n_queries"] == 18
    split = summary["by_evidence"]
    same, other = split["same_coin_or_die"], split["type_only"]
    assert same["n_queries"] == 4 and other["n_queries"] == 14  # the rescans and their photos
    assert same["top1"] == same["top5"] == 1.0  # each found through its rescan
    assert abs(same["top1"] * 4 + other["top1"] * 14 - summary["top1"] * 18) < 1e-3
    assert "same coin or die among the references (4)" in result.stdout
    assert "only other coins of the type (14)" in result.stdout
    page = (tmp_path / "loo.mistakes.html").read_text()
    assert "same coin or die among the references: 4 queries, top-1 1.000" in page
    # every mistake here is a type-only query: none is marked as having had its coin to find
    assert "its own coin or die is among the references" not in page


def test_the_mistakes_page_marks_the_queries_whose_own_coin_was_there_to_find(
    tmp_path: Path,
) -> None:
    """A mistake on a coin the references show again is a matching failure, not a lookalike
    type: the page says which mistakes those are."""
    photo = sorted((SAMPLE / "references" / "2e").glob("*.jpg"))[0]
    mistake = {
        "query": photo,
        "truth": "2e",
        "decision": "review",
        "suggestions": [{"type": "1e", "score": 0.4, "similarity": 0.8, "evidence": [photo]}],
    }
    summary = {
        "n_queries": 2, "top1": 0.0, "top5": 1.0, "coverage_at_precision": {"0.98": 0.0},
        "model_version": 1,
        "by_evidence": {
            "same_coin_or_die": {"n_queries": 1, "top1": 0.0, "top5": 1.0},
            "type_only": {"n_queries": 1, "top1": 0.0, "top5": 1.0},
        },
    }  # fmt: skip
    result = EvalResult(
        summary,
        ["1e", "2e"],
        np.zeros((2, 2), int),
        [{**mistake, "same_coin_or_die": True}, {**mistake, "same_coin_or_die": False}],
        {},
    )
    mistakes_html(result, tmp_path / "mistakes.html")
    page = (tmp_path / "mistakes.html").read_text()
    assert page.count("its own coin or die is among the references") == 1
    assert "only other coins of the type: 1 queries, top-1 0.000, top-5 1.000" in page
