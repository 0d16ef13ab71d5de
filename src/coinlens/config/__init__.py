"""Settings: one place for every default, read from env vars and ``HOME/coinlens.toml``."""

from coinlens.config.settings import DEFAULT_HOME, Settings, SettingsError, load_settings

__all__ = ["DEFAULT_HOME", "Settings", "SettingsError", "load_settings"]
