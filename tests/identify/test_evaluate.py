"""Labelled folders as ``coinlens eval`` reads them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from coinlens.identify.evaluate import LabelledSet


def test_a_labelled_set_keeps_only_some_types_with_all_their_crops() -> None:
    """References a catalogue of fewer types would hold: each kept photo with both its sides,
    its pair photo and its flags, renumbered in order."""
    labelled = LabelledSet()
    for group, (label, sides) in enumerate([("2c", 1), ("20c", 2), ("2c", 2), ("1e", 1)]):
        labelled.paths.append(Path(f"{label}/{group}.jpg"))
        labelled.labels.append(label)
        labelled.shas.append(f"sha{group}")
        labelled.keypoint_pictures[group] = f"picture{group}".encode()
        for side in range(sides):
            labelled.crops.append(np.full((4, 4, 3), 10 * group + side, np.uint8))
            labelled.keypoint_crops.append(f"crop{group}.{side}".encode())
            labelled.rounds.append(side == 0)
            labelled.framed.append(group % 2 == 0)
            labelled.group_of_crop.append(group)
    kept = labelled.only({"2c", "1e"})
    assert kept.labels == ["2c", "2c", "1e"] and kept.shas == ["sha0", "sha2", "sha3"]
    assert kept.groups == [[0], [1, 2], [3]]
    assert [int(c[0, 0, 0]) for c in kept.crops] == [0, 20, 21, 30]
    assert kept.keypoint_crops == [b"crop0.0", b"crop2.0", b"crop2.1", b"crop3.0"]
    assert kept.rounds == [True, True, False, True] and kept.framed == [True, True, True, False]
    assert kept.keypoint_pictures == {0: b"picture0", 1: b"picture2", 2: b"picture3"}
    assert labelled.only(set()).paths == [] and len(labelled.crops) == 6  # the source untouched
