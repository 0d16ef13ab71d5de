"""Bad and odd files never stop a batch: each is named with its reason, counted, and left out."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from sqlalchemy import func, select

from coinlens.catalog import Home, Image, Specimen
from helpers import make_image, png_bomb

COINLENS = Path(sys.executable).parent / "coinlens"


def run_as_user(*args: str | Path) -> subprocess.CompletedProcess:
    """Run the real CLI; as root, without the capabilities that ignore file permissions."""
    command = [str(COINLENS), *map(str, args)]
    if os.geteuid() == 0 and shutil.which("setpriv"):
        command = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", *command]
    # The environment passes on: COINLENS_DATABASE_URL is how a test selects PostgreSQL.
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def test_bad_files_are_reported_and_the_good_ones_go_in(home: Path, tmp_path: Path) -> None:
    root = tmp_path / "batch"
    good = [
        make_image(root / "2e" / "good.jpg", seed=1),
        make_image(root / "2e" / "g.png", fmt="PNG", seed=2),
    ]
    bad = root / "2e"
    (bad / "empty.jpg").write_bytes(b"")
    whole = make_image(tmp_path / "whole.jpg", size=400, seed=3).read_bytes()
    (bad / "truncated.jpg").write_bytes(whole[: len(whole) // 2])
    (bad / "notes.jpg").write_text("these are my notes, not a photo")
    (bad / "scan.png").write_bytes(b"%PDF-1.7\n% a PDF named .png\n")
    (bad / "bomb.png").write_bytes(png_bomb())
    make_image(bad / "locked.jpg", seed=4).chmod(0)
    (bad / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")

    result = run_as_user("ingest", root, "--home", home)
    assert result.returncode == 0, result.stderr
    errors = sorted(line for line in result.stderr.splitlines() if "error:" in line)
    assert errors == sorted(
        [
            f"coinlens: error: {bad / 'empty.jpg'}: empty file (0 bytes)",
            f"coinlens: error: {bad / 'truncated.jpg'}: truncated image data (the file ends early)",
            f"coinlens: error: {bad / 'notes.jpg'}: not an image (unrecognised format)",
            f"coinlens: error: {bad / 'scan.png'}: not an image (unrecognised format)",
            f"coinlens: error: {bad / 'bomb.png'}: decompression bomb: 30000x30000 = 900,000,000 "
            "pixels exceeds the limit of 100,000,000",
            f"coinlens: error: {bad / 'locked.jpg'}: permission denied (cannot read the file)",
            f"coinlens: error: {bad / 'gone.jpg'}: file not found (removed or a broken link)",
        ]
    ), result.stderr
    assert "│ failed (see errors above)" in result.stdout and "│ 7 " in result.stdout

    with Home.open(home) as opened, opened.catalog.reader() as session:
        sources = set(session.scalars(select(Image.source)).all())
        assert sources == {str(path) for path in good}
        assert session.scalar(select(func.count()).select_from(Specimen)) == 2
        # nothing half-written: exactly the good images and their thumbnails are stored
        assert len(list(opened.store.list("images/"))) == 2
        assert len(list(opened.store.list("thumbnails/"))) == 2
        assert not [p for p in (home / "store").rglob("*") if p.name.startswith(".tmp")]


def test_nothing_ingestible_exits_2(cli, home: Path, tmp_path: Path) -> None:
    root = tmp_path / "hopeless"
    root.mkdir()
    (root / "a.jpg").write_bytes(b"")
    (root / "b.jpg").write_text("text")
    result = cli("ingest", root, "--home", home, "--json")
    assert result.exit_code == 2
    assert json.loads(result.stdout)["failed"] == 2
    assert result.stderr.splitlines()[-1] == (
        f"coinlens: error: {root}: nothing could be ingested (2 problems)"
    )
