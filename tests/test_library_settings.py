"""The library reads settings as the CLI does: ``airloop.run()`` and ``Engine()`` honour
./airloop.toml and $AIRLOOP_CONFIG; ``airloop.run()`` inside a loop says what to use."""

from __future__ import annotations

from pathlib import Path

import pytest

import airloop
from airloop import DAG, task
from airloop.settings import Settings


@pytest.fixture
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No AIRLOOP_* variable, a HOME of our own (the default home is ~/airloop), and a
    working directory without airloop.toml. Returns that HOME."""
    import os

    for key in list(os.environ):
        if key.upper().startswith("AIRLOOP_"):
            monkeypatch.delenv(key)
    user_home = tmp_path / "user"
    user_home.mkdir()
    monkeypatch.setenv("HOME", str(user_home))
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return user_home


def one_task_dag(dag_id: str) -> DAG:
    with DAG(dag_id) as dag:

        @task
        def answer() -> int:
            return 42

        answer()
    return dag


def test_run_reads_airloop_toml_in_the_working_directory(clean_env: Path, tmp_path: Path) -> None:
    home = tmp_path / "from_toml"
    Path("airloop.toml").write_text(f'home = "{home}"\n')

    result = airloop.run(one_task_dag("toml_home"))

    assert result.ok
    assert (home / "airloop.db").is_file()  # where the CLI would have written
    assert (home / "logs" / "toml_home").is_dir()
    assert not (clean_env / "airloop").exists()  # not the default ~/airloop


async def test_engine_honours_airloop_config(
    clean_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "from_config"
    config = tmp_path / "elsewhere.toml"
    config.write_text(f'home = "{home}"\nxcom_max_bytes = 4096\n')
    monkeypatch.setenv("AIRLOOP_CONFIG", str(config))

    async with airloop.Engine() as engine:
        assert engine.settings.xcom_max_bytes == 4096
        result = await engine.run(one_task_dag("config_home"))

    assert result.ok
    assert (home / "airloop.db").is_file()
    assert not (clean_env / "airloop").exists()


def test_settings_precedence_is_file_then_env_then_arguments(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Path("airloop.toml").write_text("sync_threads = 3\nthread_workers = 5\nxcom_max_bytes = 7\n")
    monkeypatch.setenv("AIRLOOP_THREAD_WORKERS", "6")
    monkeypatch.setenv("AIRLOOP_XCOM_MAX_BYTES", "8")
    # Settings() itself reads the same sources as load_settings(): one rule everywhere.
    settings = Settings(xcom_max_bytes=9)
    assert (settings.sync_threads, settings.thread_workers, settings.xcom_max_bytes) == (3, 6, 9)


async def test_run_inside_a_running_loop_says_to_await_engine_run() -> None:
    with pytest.raises(RuntimeError, match=r"inside a running event loop.*await engine\.run"):
        airloop.run(one_task_dag("in_loop"))
