"""Settings: defaults, the TOML file, environment overrides, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from airloop.exceptions import SettingsError
from airloop.settings import load_settings

ROOT = Path(__file__).resolve().parent.parent


def test_defaults_derive_from_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AIRLOOP_CONFIG", raising=False)
    settings = load_settings(home=tmp_path / "h")
    assert settings.database_url == f"sqlite+aiosqlite:///{tmp_path / 'h' / 'airloop.db'}"
    assert settings.logs_path == tmp_path / "h" / "logs"
    assert settings.pools["default_pool"] >= 1


def test_the_example_file_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings(ROOT / "airloop.toml.example")
    assert settings.pools["warehouse"] == 4
    assert settings.sync_threads == 32


def test_env_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "airloop.toml"
    config.write_text("sync_threads = 7\nxcom_max_bytes = 10\n[pools]\nsmall = 2\n")
    monkeypatch.setenv("AIRLOOP_SYNC_THREADS", "9")
    settings = load_settings(config)
    assert settings.sync_threads == 9  # env wins
    assert settings.xcom_max_bytes == 10  # from the file
    assert settings.pools == {"default_pool": 100_000, "small": 2}


def test_airloop_toml_in_the_working_directory_is_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "airloop.toml").write_text("shutdown_grace_seconds = 1.5\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("AIRLOOP_CONFIG", raising=False)
    assert load_settings().shutdown_grace_seconds == 1.5


def test_unknown_and_invalid_settings_are_rejected(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("sync_thread = 3\n")
    with pytest.raises(SettingsError, match=rf"invalid setting sync_thread \(from {config}\)"):
        load_settings(config)
    config.write_text("sync_threads = 0\n")
    with pytest.raises(SettingsError, match="sync_threads"):
        load_settings(config)
    config.write_text("sync_threads = \n")
    with pytest.raises(SettingsError, match="invalid TOML"):
        load_settings(config)


def test_a_bad_environment_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRLOOP_SYNC_THREADS", "abc")
    with pytest.raises(SettingsError, match=r"sync_threads \(from AIRLOOP_SYNC_THREADS\)"):
        load_settings(home=Path("/tmp"))


def test_a_missing_settings_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")
