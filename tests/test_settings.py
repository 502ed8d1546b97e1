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
    with pytest.raises(SettingsError, match=rf"unknown setting .sync_thread. \(from {config}\)"):
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


def test_an_unknown_key_names_the_closest_setting(tmp_path: Path) -> None:
    config = tmp_path / "typo.toml"
    config.write_text("shutdown_grace_second = 3\n[aws]\nregion = 'x'\n")
    with pytest.raises(
        SettingsError,
        match=rf"unknown setting 'shutdown_grace_second' \(from {config}\); "
        r"did you mean 'shutdown_grace_seconds'\?",
    ):
        load_settings(config)
    config.write_text("[aws]\nendpoint = 'http://127.0.0.1:4566'\n")
    with pytest.raises(SettingsError, match=r"'aws\.endpoint'.*did you mean 'aws\.endpoint_url'"):
        load_settings(config)


def test_unknown_environment_variables_are_warned_about(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("AIRLOOP_SYNC_THREAD", "3")  # typo
    monkeypatch.setenv("AIRLOOP_CONFG", "x.toml")  # typo of a variable that is no setting
    monkeypatch.setenv("AIRLOOP_ZZZ", "1")  # nothing close
    # Used on purpose, not settings: no warning.
    monkeypatch.setenv("AIRLOOP_TEST_PG", "postgresql+asyncpg://x@h/db")
    monkeypatch.setenv("AIRLOOP_EMULATOR_SECONDS", "1")
    monkeypatch.setenv("AIRLOOP_POOLS__WAREHOUSE", "4")  # a nested setting
    with caplog.at_level("WARNING", logger="airloop.settings"):
        settings = load_settings(home=Path("/tmp"))
    assert settings.pools["warehouse"] == 4
    warnings = sorted(r.getMessage() for r in caplog.records)
    assert warnings == [
        "environment variable AIRLOOP_CONFG is not an airloop setting (ignored); "
        "did you mean AIRLOOP_CONFIG?",
        "environment variable AIRLOOP_SYNC_THREAD is not an airloop setting (ignored); "
        "did you mean AIRLOOP_SYNC_THREADS?",
        "environment variable AIRLOOP_ZZZ is not an airloop setting (ignored)",
    ]


def test_every_airloop_variable_the_project_uses_is_known() -> None:
    """A variable read somewhere in the project must not be warned about as a typo."""
    import re

    from airloop.settings import unknown_variables

    used: set[str] = set()
    paths = [ROOT / "Makefile", ROOT / ".ci" / "run"]
    for folder in ("src", "tests", "examples", "benchmarks"):
        paths.extend((ROOT / folder).rglob("*.py"))
    for path in paths:
        if path == Path(__file__).resolve():
            continue  # the typos above are on purpose
        used.update(re.findall(r"\bAIRLOOP_[A-Z0-9_]*[A-Z0-9]\b", path.read_text()))
    assert unknown_variables(dict.fromkeys(used, "")) == []


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sqlite+aiosqlite:////tmp/a.db", None),
        ("postgresql+asyncpg://u:secret@h:5432/db", None),
        ("mysql+asyncmy://u@h/db", None),
        ("mariadb+asyncmy://u@h/db", None),
        (
            "postgresql+psycopg2://u:secret@h/db",
            "postgresql+psycopg2:// is a sync driver: use postgresql+asyncpg://",
        ),
        ("postgresql://u@h/db", "postgresql:// is a sync driver: use postgresql+asyncpg://"),
        ("sqlite:///x.db", "sqlite:// is a sync driver: use sqlite+aiosqlite://"),
        ("mysql+pymysql://u@h/db", "mysql+pymysql:// is a sync driver: use mysql+asyncmy://"),
        ("postgres://u@h/db", "postgres:// is not a SQLAlchemy URL: use postgresql+asyncpg://"),
        ("mssql+aioodbc://u@h/db", "mssql+aioodbc:// is not supported: use sqlite+aiosqlite://"),
        ("postgresql+asyncpgg://u@h/db", "unknown driver 'asyncpgg' for postgresql"),
        ("airloop.db", "is not a database URL"),
    ],
)
def test_database_urls_need_a_supported_async_driver(url: str, message: str | None) -> None:
    from airloop.store.urls import DatabaseUrlError, check_database_url

    if message is None:
        check_database_url(url)
        return
    with pytest.raises(DatabaseUrlError) as caught:
        check_database_url(url)
    assert message in str(caught.value)
    assert "secret" not in str(caught.value)  # a password is never echoed


def test_a_home_that_cannot_be_created_is_blamed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    monkeypatch.setenv("AIRLOOP_HOME", str(blocker / "home"))
    settings = load_settings()
    with pytest.raises(
        SettingsError, match=rf"home {blocker / 'home'} \(from AIRLOOP_HOME\) cannot be used"
    ):
        settings.create_folders()
    explicit = load_settings(logs_folder=blocker / "logs", home=tmp_path / "h")
    with pytest.raises(SettingsError, match=r"logs_folder .* \(setting 'logs_folder'\)"):
        explicit.create_folders()


def test_the_configuration_doc_lists_every_setting() -> None:
    """docs/configuration.md carries the table generated from the model ('make docs')."""
    from airloop.settings import REFERENCE_END, REFERENCE_START, setting_names, settings_reference

    doc = (ROOT / "docs" / "configuration.md").read_text()
    block = doc[doc.index(REFERENCE_START) + len(REFERENCE_START) : doc.index(REFERENCE_END)]
    assert block.strip() == settings_reference().strip(), "run 'make docs'"
    for name in setting_names():
        assert f"| `{name}` |" in block


def test_connections_and_variables_in_the_environment_are_not_settings() -> None:
    from airloop.settings import unknown_variables

    environ = {"AIRLOOP_CONN_MY_DB": "postgres://h", "AIRLOOP_VAR_REGION": "x", "AIRLOOP_CONX": ""}
    assert unknown_variables(environ) == [
        "environment variable AIRLOOP_CONX is not an airloop setting (ignored); "
        "did you mean AIRLOOP_CONFIG?"
    ]


def test_the_fernet_key_is_not_in_the_settings_repr() -> None:
    from airloop.settings import Settings

    assert "secret-key" not in repr(Settings(fernet_key="secret-key"))


def test_backend_arguments_without_a_backend_are_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from airloop.exceptions import SettingsError
    from airloop.settings import load_settings

    monkeypatch.setenv("AIRLOOP_SECRETS_BACKEND_KWARGS", '{"connections_prefix": "x"}')
    with pytest.raises(
        SettingsError, match="secrets_backend_kwargs is set but secrets_backend is not"
    ):
        load_settings()
