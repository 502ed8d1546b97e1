"""One typed settings model, read once (from airloop.toml and AIRLOOP_* variables) and passed in."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from airloop.core.pools import DEFAULT_POOL
from airloop.exceptions import SettingsError


class AwsSettings(BaseModel):
    """The ``[aws]`` section (env: ``AIRLOOP_AWS__REGION`` ...). Unset values fall back to
    the standard AWS chain (environment, ~/.aws, instance role)."""

    model_config = ConfigDict(extra="forbid")

    region: str | None = None
    endpoint_url: str | None = Field(
        default=None, description="e.g. the local emulator: http://127.0.0.1:4566"
    )
    access_key_id: str | None = None
    secret_access_key: str | None = None
    session_token: str | None = None
    profile: str | None = None
    max_concurrency: int = Field(
        default=64, ge=1, description="Concurrent calls per (service, action); sizes the pool."
    )
    rate_limits: dict[str, float] = Field(
        default_factory=dict,
        description='Calls per second per action, e.g. {"SubmitJob": 50}; adapts on throttling.',
    )
    max_attempts: int = Field(
        default=12, ge=1, description="Tries per call on throttling, 5xx and connection errors."
    )
    batch_poll_interval: float = Field(
        default=30.0, gt=0, description="Seconds between DescribeJobs rounds."
    )
    batch_poll_jitter: float = Field(
        default=0.1, ge=0, lt=1, description="Fraction of the interval added at random."
    )
    batch_describe_concurrency: int = Field(
        default=4, ge=1, description="DescribeJobs calls (100 ids each) in flight per round."
    )
    batch_missing_rounds: int = Field(
        default=3, ge=1, description="Rounds a job id may be missing before its task fails."
    )


class Settings(BaseSettings):
    """airloop's settings. Precedence: explicit arguments > AIRLOOP_* env > airloop.toml > defaults."""

    model_config = SettingsConfigDict(
        env_prefix="AIRLOOP_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    home: Path = Field(
        default_factory=lambda: Path("~/airloop").expanduser(),
        description="Where the default database and logs live.",
    )
    database_url: str = Field(
        default="",
        description="SQLAlchemy async URL; default: SQLite at <home>/airloop.db.",
    )
    database_pool_size: int = Field(
        default=10, ge=1, description="PostgreSQL/MySQL: connections kept open."
    )
    database_max_overflow: int = Field(
        default=20, ge=0, description="PostgreSQL/MySQL: extra connections under load."
    )
    logs_folder: Path | None = Field(default=None, description="Default: <home>/logs.")
    dags_folder: Path | None = Field(default=None, description="Default: <home>/dags.")
    dag_reparse_interval: float = Field(
        default=60.0, gt=0, description="Re-import every DAG file this often (dynamic DAGs)."
    )
    dag_parse_timeout: float = Field(
        default=30.0, gt=0, description="A DAG file whose import takes longer is an import error."
    )
    parser_processes: int = Field(
        default=2, ge=1, description="DAG files parsed at once, each in a process of its own."
    )
    dag_parse_memory_limit: int = Field(
        default=4096,
        ge=0,
        description="MB of address space a DAG file's parser process may use (0: no limit).",
    )
    scheduler_poll_interval: float = Field(
        default=2.0,
        gt=0,
        description="How often the service looks for runs triggered and DAGs paused from the CLI.",
    )
    use_async: bool = Field(
        default=True,
        description="Tasks that name no executor run on the async executor; false: on sync_executor.",
    )
    sync_executor: Literal["thread", "process", "dask"] = Field(
        default="thread", description="The default executor when use_async is false."
    )
    sync_threads: int = Field(
        default=32, ge=1, description="async executor: threads for sync tasks and sync pokes."
    )
    thread_workers: int = Field(default=32, ge=1, description="thread executor: pool size.")
    process_workers: int = Field(
        default_factory=lambda: os.cpu_count() or 2,
        ge=1,
        description="process executor: pool size.",
    )
    process_start_method: Literal["forkserver", "spawn"] = Field(
        default="forkserver", description="process executor: how worker processes start."
    )
    dask_address: str | None = Field(
        default=None,
        description="dask executor: scheduler address; none: start a LocalCluster on loopback.",
    )
    dask_workers: int = Field(default=2, ge=1, description="dask LocalCluster: worker processes.")
    dask_threads_per_worker: int = Field(
        default=16, ge=1, description="dask LocalCluster: threads (= concurrent tasks) per worker."
    )
    dask_pool_resources: bool = Field(
        default=False,
        description="dask: tasks ask for their pool's slots as Dask worker resources.",
    )
    aws: AwsSettings = Field(default_factory=AwsSettings)
    min_tick_interval: float = Field(
        default=0.01,
        ge=0,
        description="The scheduler writes at most one transaction per this many seconds.",
    )
    loop_block_threshold: float = Field(
        default=0.2, gt=0, description="Warn when the event loop is blocked longer than this (s)."
    )
    max_active_tasks_per_dag: int = Field(
        default=100_000, ge=1, description="Default for DAG(max_active_tasks=...)."
    )
    pools: dict[str, int] = Field(
        default_factory=lambda: {DEFAULT_POOL: 100_000},
        description="Pool name -> slots. default_pool always exists.",
    )
    xcom_max_bytes: int = Field(
        default=1_048_576, ge=1, description="Largest JSON-encoded return value stored as XCom."
    )
    shutdown_grace_seconds: float = Field(
        default=10.0, ge=0, description="On SIGINT/SIGTERM: how long running tasks get to stop."
    )

    @model_validator(mode="after")
    def _derive(self) -> Settings:
        self.home = self.home.expanduser()
        if not self.database_url:
            self.database_url = f"sqlite+aiosqlite:///{self.home / 'airloop.db'}"
        if self.logs_folder is None:
            self.logs_folder = self.home / "logs"
        if self.dags_folder is None:
            self.dags_folder = self.home / "dags"
        if DEFAULT_POOL not in self.pools:
            self.pools = {DEFAULT_POOL: 100_000, **self.pools}
        for name, slots in self.pools.items():
            if slots < 0:
                raise ValueError(f"pool {name!r} cannot have {slots} slots")
        return self

    @property
    def default_executor(self) -> str:
        return "async" if self.use_async else self.sync_executor

    @property
    def logs_path(self) -> Path:
        assert self.logs_folder is not None
        return self.logs_folder

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = settings_cls.model_config.get("toml_file")
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if toml_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        return tuple(sources)


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Read settings once: ``config_file``, else $AIRLOOP_CONFIG, else ./airloop.toml if present.

    Raises SettingsError naming the file or variable at fault.
    """
    path = config_file or os.environ.get("AIRLOOP_CONFIG")
    if path is None and Path("airloop.toml").is_file():
        path = "airloop.toml"
    if path is not None and not Path(path).is_file():
        raise SettingsError(f"settings file {path} does not exist")
    try:
        if path is None:
            return Settings(**overrides)
        bound = type(
            "Settings",
            (Settings,),
            {
                "model_config": SettingsConfigDict(
                    **{**Settings.model_config, "toml_file": Path(path)}
                )
            },
        )
        settings: Settings = bound(**overrides)
        return settings
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"settings file {path}: invalid TOML: {exc}") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        name = ".".join(str(part) for part in first["loc"]) or "settings"
        key = name.split(".")[0]
        sources = [f"AIRLOOP_{key.upper()}"] if f"AIRLOOP_{key.upper()}" in os.environ else []
        if path is not None:
            sources.append(str(path))
        where = f" (from {' or '.join(sources)})" if sources else ""
        raise SettingsError(f"invalid setting {name}{where}: {first['msg']}") from None
