"""References whose physical cues were measured another way are measured again, end to end."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from coinlens.catalog import Home
from coinlens.identify.engine import current_model
from coinlens.vision.cues import CUE_VERSION
from reviewable import SAMPLE, copy_home


def _saved_index(home: Path) -> tuple[str, dict[str, np.ndarray]]:
    with Home.open(home) as opened:
        key = current_model(opened).index_key
        return key, dict(np.load(io.BytesIO(opened.store.get(key))))


@pytest.mark.parametrize("older", ["first version", "before the two-tone gap"])
def test_identify_measures_again_the_cues_of_an_older_index(
    cli, reviewable_template, tmp_path: Path, older: str
) -> None:
    home = copy_home(reviewable_template, tmp_path / "home")
    key, arrays = _saved_index(home)
    assert int(arrays["cue_version"]) == CUE_VERSION and len(arrays["cue_ids"]) > 0
    measured = dict(zip(arrays["cue_ids"].tolist(), arrays["cues"], strict=True))

    if older == "first version":  # no version, other numbers
        del arrays["cue_version"]
        arrays["cues"] = np.zeros_like(arrays["cues"])
    else:  # version 2: four cues a reference
        arrays["cue_version"] = np.array(2)
        arrays["cues"] = arrays["cues"][:, :4]
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    with Home.open(home) as opened:
        opened.store.put(key, buffer.getvalue())

    backlog = tmp_path / "intake"
    backlog.mkdir()
    coin = sorted((SAMPLE / "backlog" / "2e").glob("*.jpg"))[0]
    (backlog / coin.name).write_bytes(coin.read_bytes())
    result = cli("identify", backlog, "--home", home)
    assert result.exit_code == 0, result.stderr

    _, again = _saved_index(home)
    assert int(again["cue_version"]) == CUE_VERSION
    remeasured = dict(zip(again["cue_ids"].tolist(), again["cues"], strict=True))
    assert set(remeasured) == set(measured)
    for image_id, cues in measured.items():
        np.testing.assert_allclose(remeasured[image_id], cues, equal_nan=True)
