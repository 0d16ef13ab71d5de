"""Settings: defaults, HOME/coinlens.toml, COINLENS_* variables, overrides, in that order."""

from __future__ import annotations

from pathlib import Path

import pytest

from coinlens.config import SettingsError, load_settings


def test_defaults_live_in_the_home(tmp_path: Path) -> None:
    settings = load_settings(tmp_path / "h")
    assert settings.home == (tmp_path / "h").resolve()
    assert settings.database_url == f"sqlite:///{settings.home / 'coinlens.db'}"
    assert settings.store_url == (settings.home / "store").as_uri()
    assert settings.max_image_pixels == 100_000_000


def test_home_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COINLENS_HOME", str(tmp_path / "from-env"))
    assert load_settings().home == (tmp_path / "from-env").resolve()


def test_toml_then_env_then_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "coinlens.toml").write_text(
        '[coinlens]\nstore_url = "s3://from-toml/x"\nthumbnail_size = 128\n'
        'ingest_workers = 2\nfuture_option = "kept"\n'
    )
    settings = load_settings(tmp_path)
    assert settings.store_url == "s3://from-toml/x"
    assert settings.thumbnail_size == 128
    assert settings.extra == {"future_option": "kept"}
    monkeypatch.setenv("COINLENS_THUMBNAIL_SIZE", "64")
    assert load_settings(tmp_path).thumbnail_size == 64
    assert load_settings(tmp_path, thumbnail_size=32).thumbnail_size == 32
    assert load_settings(tmp_path).ingest_workers == 2


def test_standard_aws_variables_are_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "key")
    settings = load_settings(tmp_path)
    assert settings.s3_endpoint_url == "http://127.0.0.1:9"
    assert settings.s3_access_key_id == "key"


def test_bad_values_name_their_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COINLENS_MAX_IMAGE_PIXELS", "lots")
    with pytest.raises(SettingsError, match="COINLENS_MAX_IMAGE_PIXELS.*whole number.*'lots'"):
        load_settings(tmp_path)
    monkeypatch.delenv("COINLENS_MAX_IMAGE_PIXELS")
    monkeypatch.setenv("COINLENS_NEW_TYPE_SHARE", "1.5")
    with pytest.raises(SettingsError, match="COINLENS_NEW_TYPE_SHARE.*between 0.0 and 0.9"):
        load_settings(tmp_path)
    monkeypatch.setenv("COINLENS_NEW_TYPE_SHARE", "0.25")
    assert load_settings(tmp_path).new_type_share == 0.25
    (tmp_path / "coinlens.toml").write_text("auto_accept_precision = 'high'\n")
    with pytest.raises(SettingsError, match="coinlens.toml: auto_accept_precision must lie"):
        load_settings(tmp_path)
    (tmp_path / "coinlens.toml").write_text("[coinlens\n")
    with pytest.raises(SettingsError, match="coinlens.toml: not valid TOML"):
        load_settings(tmp_path)


def test_cli_reports_bad_settings_in_one_line(tmp_path: Path, cli) -> None:
    (tmp_path / "coinlens.toml").write_text("ingest_workers = -1\n")
    result = cli("status", "--home", tmp_path)
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"coinlens: error: {tmp_path / 'coinlens.toml'}: ingest_workers must be positive, got -1"
    )
