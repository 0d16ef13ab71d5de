"""The command-line contract: status counts, version, demo, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from coinlens import __version__

COINLENS = Path(sys.executable).parent / "coinlens"
SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "euro-coins"


def test_status_of_a_new_home_is_all_zero(cli, home: Path) -> None:
    result = cli("status", "--home", home, "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {
        "types": 0,
        "specimens": {"catalogued": 0, "backlog": 0, "in_review": 0},
        "images": 0,
        "models": 0,
    }


def test_home_from_environment_variable(cli, tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert cli("init", env={"COINLENS_HOME": str(home)}).exit_code == 0
    assert (home / "coinlens.db").is_file()  # the default catalogue: SQLite inside the home


def test_console_script_version_and_usage_errors() -> None:
    version = subprocess.run([str(COINLENS), "--version"], capture_output=True, text=True)
    assert (version.returncode, version.stdout.strip()) == (0, f"coinlens {__version__}")
    unknown = subprocess.run([str(COINLENS), "frobnicate"], capture_output=True, text=True)
    assert unknown.returncode == 2
    missing_arg = subprocess.run([str(COINLENS), "ingest"], capture_output=True, text=True)
    assert missing_arg.returncode == 2


def test_python_module_entry_point(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COINLENS_")}
    result = subprocess.run(
        [sys.executable, "-m", "coinlens", "status", "--json", "--home", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["images"] == 0


def test_demo_runs_the_whole_loop_on_the_bundled_sample(cli, home: Path) -> None:
    result = cli("demo", "--home", home, "--epochs", "1")
    assert result.exit_code == 0, result.stderr
    for heading in ("ingest", "train", "identify the backlog", "tray photos", "evaluat"):
        assert heading in result.stdout
    assert "coverage at 98% precision" in result.stdout
    status = json.loads(cli("status", "--home", home, "--json").stdout)
    references = sum(1 for _ in (SAMPLE / "references").rglob("*.jpg"))
    backlog = sum(1 for _ in (SAMPLE / "backlog").rglob("*.jpg"))
    assert (references, backlog) == (305, 155)
    tray_coins = 28 + 28 + 29  # counted by hand; each coin becomes a backlog specimen
    assert status == {
        "types": 8,
        "specimens": {"catalogued": references, "backlog": backlog + tray_coins, "in_review": 0},
        "images": references + backlog + tray_coins,
        "models": 1,
    }
    reports = list((home / "reports").glob("eval-*/eval.*"))
    assert {p.name for p in reports} == {
        "eval.json",
        "eval.confusion.png",
        "eval.mistakes.html",
        "eval.reliability.png",
    }


def test_sample_is_small_and_licensed() -> None:
    size = sum(p.stat().st_size for p in SAMPLE.rglob("*") if p.is_file())
    assert size < 15 * 1024 * 1024
    assert "MIT License" in (SAMPLE / "LICENSE").read_text()


def test_help_shows_defaults_and_extras_in_square_brackets() -> None:
    """Rich reads "[...]" in help text as markup and drops it unless escaped."""
    env = {**os.environ, "COLUMNS": "250"}
    run = [str(COINLENS), "ingest", "--help"]
    ingest = subprocess.run(run, capture_output=True, text=True, env=env).stdout
    for shown in ("[default: ./coinlens-data]", "[default: folder name]", "pip install .[ray]"):
        assert shown in ingest
    run = [str(COINLENS), "export", "--help"]
    export = subprocess.run(run, capture_output=True, text=True, env=env).stdout
    assert "s3://bucket/prefix[/file]" in export


def test_names_with_square_brackets_print_as_they_are(
    cli, home: Path, tmp_path: Path, monkeypatch
) -> None:
    """A folder or file name is never read as console markup (rich would drop "[draft]")."""
    folder = tmp_path / "batch [draft]"
    folder.mkdir()
    photo = next((SAMPLE / "backlog").rglob("*.jpg"))
    (folder / "coin [old].jpg").write_bytes(photo.read_bytes())
    (folder / "broken [copy].jpg").write_bytes(b"not a picture")
    monkeypatch.chdir(tmp_path)  # the summary's title names the folder as given
    ingest = cli("ingest", "batch [draft]", "--home", home, "--status", "backlog")
    assert "batch [draft]" in ingest.stdout
    assert "broken [copy].jpg" in ingest.stderr
    assert cli("status", "--home", home, "--json").stdout.count('"backlog": 1') == 1


def test_identify_table_never_shows_a_coin_sent_to_review_as_1_00_without_saying_why() -> None:
    from coinlens.cli.recognition import decision_text
    from coinlens.identify.scoring import confidence_text

    assert [confidence_text(s) for s in (0.99897, 0.9996, 0.994, 1.0, 0.5)] == [
        "0.999",
        "0.9996",
        "0.99",
        "1.00",
        "0.50",
    ]
    assert confidence_text(0.99897, 3) == "0.999" and confidence_text(0.99996, 3) == "0.99996"

    def record(decision: str, score: float) -> dict:
        return {"decision": decision, "suggestions": [{"type": "1e", "score": score}]}

    threshold = 0.9989
    assert decision_text(record("review", 0.9990), threshold) == "review (far from refs)"
    assert decision_text(record("review", 0.95), threshold) == "review"
    assert decision_text(record("auto_accept", 0.9990), threshold) == "auto_accept"
    assert decision_text(record("possible_new_type", 0.9990), threshold) == "possible_new_type"
    assert decision_text({"decision": "possible_new_type", "suggestions": []}, threshold) == (
        "possible_new_type"
    )
