"""One typed settings model, read once (from airloop.toml and AIRLOOP_* variables) and passed in.

Where settings come from, lowest to highest precedence (docs/configuration.md):

1. the defaults below;
2. the settings file: ``load_settings(path)`` / ``--config``, else ``$AIRLOOP_CONFIG``,
   else ``./airloop.toml`` if there is one;
3. ``AIRLOOP_<NAME>`` environment variables (``AIRLOOP_AWS__REGION`` for ``[aws]``);
4. arguments: ``load_settings(home=...)``, ``Settings(home=...)``.

The CLI, ``Engine()`` and ``airloop.run()`` all read them this way, once, and the
process and Dask executors ship the resulting object to their workers.
"""

from __future__ import annotations

import difflib
import json
import logging
import os
import re
import tomllib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)
from pydantic_settings import SettingsError as SourceError

from airloop.core.pools import DEFAULT_POOL
from airloop.exceptions import SettingsError
from airloop.store.urls import check_database_url

log = logging.getLogger(__name__)

PREFIX = "AIRLOOP_"

#: AIRLOOP_* variables that are not settings but are used on purpose: the settings file,
#: the test suite's database servers and expected default executor, the Batch
#: emulator's job environment.
OTHER_VARIABLES = frozenset(
    {
        "AIRLOOP_CONFIG",
        "AIRLOOP_TEST_PG",
        "AIRLOOP_TEST_MYSQL",
        "AIRLOOP_TEST_SQL_PG",
        "AIRLOOP_TEST_SQL_MYSQL",
        "AIRLOOP_TEST_DEFAULT_EXECUTOR",
        "AIRLOOP_EMULATOR_SECONDS",
        "AIRLOOP_EMULATOR_EXIT_CODE",
        "AIRLOOP_TEST_CHROMIUM",
        "AIRLOOP_BENCH_CHROMIUM",
        "AIRLOOP_DOC_IMAGES",
    }
)

#: AIRLOOP_CONN_<ID> and AIRLOOP_VAR_<KEY>: connections and variables given in the
#: environment (airloop.connections.sources), not settings.
NAMED_VALUE_PREFIXES = ("AIRLOOP_CONN_", "AIRLOOP_VAR_")

#: The settings file chosen by load_settings(path) for the Settings it is building.
_explicit_file: ContextVar[Path | None] = ContextVar("airloop_settings_file", default=None)


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


class SqlSettings(BaseModel):
    """The ``[sql]`` section (env: ``AIRLOOP_SQL__POOL_SIZE`` ...): the SQL hooks and
    operators (``airloop.hooks.sql``, ``airloop.operators.sql``)."""

    model_config = ConfigDict(extra="forbid")

    pool_size: int = Field(
        default=5,
        ge=1,
        description=(
            "Connections per SQL connection id in the engine's shared pool (a connection's "
            "extra pool_size or a hook's pool_size argument overrides it)."
        ),
    )
    xcom_max_rows: int = Field(
        default=1000,
        ge=0,
        description=(
            "Most rows an SQL operator pushes as XCom; past it the task fails, naming the "
            "count (the operator's max_xcom_rows argument overrides it)."
        ),
    )


class ApiSettings(BaseModel):
    """The ``[api]`` section (env: ``AIRLOOP_API__PORT`` ...): the HTTP API and web UI
    (``airloop api-server``, ``airloop standalone``; docs/api.md, docs/ui.md)."""

    model_config = ConfigDict(extra="forbid")

    host: str = Field(
        default="127.0.0.1",
        description=(
            "Address the API server binds. Any address other than loopback needs "
            "auth = 'password', or the server refuses to start."
        ),
    )
    port: int = Field(default=8080, ge=0, le=65535, description="Port the API server binds.")
    auth: Literal["none", "password"] = Field(
        default="none",
        description=(
            "'none': no login, every request is admin (loopback only). 'password': users "
            "from 'airloop users create' log in; scripts send an API token."
        ),
    )
    secret_key: str = Field(
        default="",
        repr=False,
        description=(
            "Signs session cookies and CSRF tokens. Empty: a random key per server start "
            "(sessions end when it restarts). Several API servers behind one address "
            "need the same key."
        ),
    )
    session_hours: float = Field(
        default=12.0, gt=0, description="Hours a browser session lasts without activity."
    )
    max_body_bytes: int = Field(
        default=1_048_576,
        ge=1024,
        description="Largest request body accepted (larger ones get 413).",
    )
    pool_size: int = Field(
        default=5,
        ge=1,
        description="Database connections the API server keeps (its own pool, reads mostly).",
    )
    standalone_max_requests: int = Field(
        default=4,
        ge=0,
        description=(
            "airloop standalone: API and UI requests handled at once on the scheduler's "
            "event loop; more wait their turn, so a busy UI cannot crowd out the "
            "scheduler (0: no limit). Live streams and /metrics are not counted."
        ),
    )


class Settings(BaseSettings):
    """airloop's settings. Precedence: arguments > AIRLOOP_* env > settings file > defaults.

    The settings file is the one given to ``load_settings``, else ``$AIRLOOP_CONFIG``,
    else ``./airloop.toml`` if present (see ``settings_file``).
    """

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
    scheduler_ha: Literal["auto", "off"] = Field(
        default="auto",
        description=(
            "auto: on PostgreSQL 12+, MySQL 8.0.1+ and MariaDB 10.6+ several schedulers share "
            "the work through DAG leases (docs/ha.md); off, and always on SQLite: one "
            "scheduler per database (a second refuses to start)."
        ),
    )
    scheduler_lease_ttl: float = Field(
        default=10.0,
        gt=0,
        description=(
            "Seconds a scheduler's DAG leases last without renewal; after that another "
            "scheduler adopts the DAGs and their runs."
        ),
    )
    scheduler_lease_renew_interval: float = Field(
        default=2.0,
        gt=0,
        description="How often a scheduler renews its leases (at most a third of the lease).",
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
    sql: SqlSettings = Field(default_factory=SqlSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    min_tick_interval: float = Field(
        default=0.01,
        ge=0,
        description="The scheduler writes at most one transaction per this many seconds.",
    )
    depends_on_past_recheck_interval: float = Field(
        default=5.0,
        gt=0,
        description=(
            "depends_on_past: how often (s) a held task instance checks again a previous "
            "run driven by another process (one in this process wakes it at once)."
        ),
    )
    loop_block_threshold: float = Field(
        default=0.2, gt=0, description="Warn when the event loop is blocked longer than this (s)."
    )
    gc_policy: bool = Field(
        default=True,
        description=(
            "The engine tunes Python's garbage collector while runs are active: freezes "
            "the long-lived objects at each run start, raises the thresholds, restores "
            "them when runs end (ADR 0044). false: the collector is left untouched."
        ),
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
    max_map_length: int = Field(
        default=100_000,
        ge=1,
        description=(
            "Most task instances one mapped task may expand to; past it the mapped task "
            "fails, naming its length and this setting."
        ),
    )
    shutdown_grace_seconds: float = Field(
        default=10.0, ge=0, description="On SIGINT/SIGTERM: how long running tasks get to stop."
    )
    callback_timeout: float = Field(
        default=300.0,
        gt=0,
        description=(
            "Seconds each task or DAG callback (and notifier) may run; past it the "
            "callback is stopped and the timeout logged. At shutdown running callbacks "
            "get at most shutdown_grace_seconds."
        ),
    )

    fernet_key: str = Field(
        default="",
        repr=False,
        description=(
            "Fernet key(s) encrypting connection passwords/extras and variables in the "
            "database; comma-separated for rotation (the first encrypts). Generate one "
            "with 'airloop connections generate-fernet-key'."
        ),
    )
    secrets_backend: str = Field(
        default="",
        description=(
            "Class path of a secrets backend looked up after the environment and before "
            "the database, e.g. airloop.providers.aws.secrets_manager.SecretsManagerBackend."
        ),
    )
    secrets_backend_kwargs: dict[str, Any] = Field(
        default_factory=dict,
        description='The backend\'s arguments (JSON), e.g. {"connections_prefix": "airloop/connections"}.',
    )
    sensitive_var_conn_names: str = Field(
        default="",
        description=(
            "Comma-separated names added to the sensitive ones (password, secret, token, "
            "api_key...): a connection extra, variable or dict key containing one has its "
            "value masked as *** in logs, rendered fields and errors (Airflow's setting)."
        ),
    )

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, url: str) -> str:
        if url:  # empty: the default SQLite database, derived below
            check_database_url(url)  # DatabaseUrlError is a ValueError: a validation error
        return url

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
        if self.scheduler_lease_renew_interval * 3 > self.scheduler_lease_ttl:
            raise ValueError(
                f"scheduler_lease_renew_interval ({self.scheduler_lease_renew_interval:g}s) "
                f"must be at most a third of scheduler_lease_ttl ({self.scheduler_lease_ttl:g}s)"
            )
        if self.secrets_backend_kwargs and not self.secrets_backend:
            raise ValueError("secrets_backend_kwargs is set but secrets_backend is not")
        return self

    @property
    def default_executor(self) -> str:
        return "async" if self.use_async else self.sync_executor

    @property
    def logs_path(self) -> Path:
        assert self.logs_folder is not None
        return self.logs_folder

    def create_folders(self) -> None:
        """Create the folders airloop writes to (the SQLite database's, the logs').

        Raises SettingsError naming the setting at fault, ``home`` when the folder
        is one derived from it. Blocking: call it off the event loop.
        """
        folders = [
            (self.logs_path, "home" if self.logs_path == self.home / "logs" else "logs_folder")
        ]
        if self.database_url == f"sqlite+aiosqlite:///{self.home / 'airloop.db'}":
            folders.insert(0, (self.home, "home"))
        for folder, setting in folders:
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                value = self.home if setting == "home" else folder
                raise SettingsError(
                    f"{setting} {value} ({_origin(setting)}) cannot be used: cannot create "
                    f"{exc.filename or folder}: {exc.strerror}"
                ) from None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = settings_file()
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if toml_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        return tuple(sources)


def settings_file(config_file: str | Path | None = None) -> Path | None:
    """The settings file to read: ``config_file``, else $AIRLOOP_CONFIG, else
    ./airloop.toml if present, else none. SettingsError if the one named is missing."""
    path = config_file or _explicit_file.get() or os.environ.get("AIRLOOP_CONFIG")
    if not path:
        return Path("airloop.toml") if Path("airloop.toml").is_file() else None
    if Path(path).is_dir():
        raise SettingsError(f"settings file {path} is a directory")
    if not Path(path).is_file():
        raise SettingsError(f"settings file {path} does not exist")
    return Path(path)


@contextmanager
def _reading(path: Path | None) -> Iterator[None]:
    token = _explicit_file.set(path)
    try:
        yield
    finally:
        _explicit_file.reset(token)


def _env_name(name: str) -> str:
    return PREFIX + name.upper().replace(".", "__")


def _in_environ(name: str) -> bool:
    return _env_name(name) in {key.upper() for key in os.environ}


def _origin(name: str) -> str:
    """Where the setting ``name`` (``aws.region``) came from, for a message."""
    return f"from {_env_name(name)}" if _in_environ(name) else f"setting {name!r}"


#: The sections of the settings (``[aws]``, ``[sql]``): their settings are dotted.
SECTIONS: dict[str, type[BaseModel]] = {"aws": AwsSettings, "sql": SqlSettings, "api": ApiSettings}


def setting_names() -> list[str]:
    """Every setting, those of a section (``aws.*``, ``sql.*``) dotted."""
    names: list[str] = []
    for name in Settings.model_fields:
        section = SECTIONS.get(name)
        if section is not None:
            names.extend(f"{name}.{sub}" for sub in section.model_fields)
        else:
            names.append(name)
    return names


def _did_you_mean(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """One warning line per AIRLOOP_* variable that is not a setting (pydantic-settings
    would ignore it without a word)."""
    fields = Settings.model_fields
    known = {name.upper().replace(".", "__"): name for name in [*fields, *setting_names()]}
    known.update({name[len(PREFIX) :]: name for name in OTHER_VARIABLES})
    lines = []
    for key in sorted(environ):
        upper = key.upper()
        if not upper.startswith(PREFIX) or upper in OTHER_VARIABLES:
            continue
        if upper.startswith(NAMED_VALUE_PREFIXES):
            continue  # a connection or variable (airloop.connections), not a setting
        rest = upper[len(PREFIX) :]
        if rest.split("__", 1)[0].lower() in fields:
            continue  # nested keys (AIRLOOP_AWS__REGOIN) are validated by the model
        close = difflib.get_close_matches(rest, list(known), n=1)
        hint = f"; did you mean {PREFIX}{close[0]}?" if close else ""
        lines.append(f"environment variable {key} is not an airloop setting (ignored){hint}")
    return lines


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Read settings once, as the CLI does: ``config_file``, else $AIRLOOP_CONFIG, else
    ./airloop.toml if present; AIRLOOP_* variables over it; ``overrides`` over both.

    Raises SettingsError (one line) naming the file or variable at fault. Logs a
    warning for each AIRLOOP_* variable that is not a setting.
    """
    path = settings_file(config_file)
    for line in unknown_variables(os.environ):
        log.warning("%s", line)
    try:
        with _reading(path):
            return Settings(**overrides)
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"settings file {path}: invalid TOML: {exc}") from None
    except SourceError as exc:  # a variable that cannot be parsed (not JSON)
        raise SettingsError(_unparsable(str(exc))) from None
    except ValidationError as exc:
        raise SettingsError(_invalid(exc, path)) from None


def _unparsable(message: str) -> str:
    found = re.search(r'field "([^"]+)"', message)
    if found is None:
        return message
    name = found.group(1)
    var = _env_name(name)
    value = next((v for k, v in os.environ.items() if k.upper() == var), "")
    hint = f"{var} must be JSON, e.g. {var}='{json.dumps(_example(name))}'"
    key, sep, item = value.partition("=")
    if sep and key.strip():
        hint += f", or set one entry: {var}__{key.strip().upper()}={item.strip()}"
    return f"invalid setting {name} (from {var}): {hint}"


def _example(name: str) -> Any:
    if name == "pools":
        return {"warehouse": 4}
    if name == "aws":
        return {"region": "eu-west-1"}
    return {"key": "value"}


def _invalid(exc: ValidationError, path: Path | None) -> str:
    first = exc.errors()[0]
    name = ".".join(str(part) for part in first["loc"]) or "settings"
    sources = [_env_name(name)] if _in_environ(name) else []
    if not sources and _in_environ(name.split(".")[0]):
        sources = [_env_name(name.split(".")[0])]
    if path is not None:
        sources.append(str(path))
    where = f" (from {' or '.join(sources)})" if sources else ""
    if first["type"] == "extra_forbidden":
        parent = name.rpartition(".")[0]
        choices = [n for n in setting_names() if n.rpartition(".")[0] == parent]
        return f"unknown setting {name!r}{where}{_did_you_mean(name, choices)}"
    error = first.get("ctx", {}).get("error")
    # Our own validators' messages, without pydantic's "Value error, " in front.
    message = str(error) if first["type"] == "value_error" and error else first["msg"]
    if not first["loc"]:  # a check across settings (pools)
        return f"invalid settings{where}: {message}"
    return f"invalid setting {name}{where}: {message}"


#: Defaults that depend on the machine, as the reference shows them.
_SHOWN_DEFAULTS = {"home": "`~/airloop`", "process_workers": "CPU count"}

REFERENCE_START = "<!-- settings reference: generated by 'make docs', do not edit -->"
REFERENCE_END = "<!-- end of settings reference -->"


def _shown_default(name: str, field: Any) -> str:
    if name in _SHOWN_DEFAULTS:
        return _SHOWN_DEFAULTS[name]
    value = field.default_factory() if field.default_factory is not None else field.default
    if value is None or value == "":
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, str):
        return f'`"{value}"`'
    if isinstance(value, dict):
        return f"`{json.dumps(value)}`"
    return f"`{value}`"


def settings_reference() -> str:
    """Every setting as a Markdown table (docs/configuration.md), from the model itself."""
    rows = [
        "| setting | environment variable | default | meaning |",
        "|---|---|---|---|",
    ]
    for name in setting_names():
        section, _, key = name.rpartition(".")
        model: type[BaseModel] = SECTIONS[section] if section else Settings
        field = model.model_fields[key]
        meaning = field.description or (
            f"AWS {key.replace('_', ' ')}; unset: the standard AWS chain"
            if section == "aws"
            else ""
        )
        if not meaning:
            raise ValueError(f"setting {name} has no description")
        meaning = meaning.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")
        rows.append(
            f"| `{name}` | `{_env_name(name)}` | {_shown_default(key, field)} | {meaning} |"
        )
    return "\n".join(rows) + "\n"


def write_reference(doc: Path) -> bool:
    """Put the current reference between the markers of ``doc``; True if it changed."""
    text = doc.read_text()
    start = text.index(REFERENCE_START) + len(REFERENCE_START)
    end = text.index(REFERENCE_END)
    updated = text[:start] + "\n" + settings_reference() + text[end:]
    if updated == text:
        return False
    doc.write_text(updated)
    return True


if __name__ == "__main__":  # python -m airloop.settings docs/configuration.md ('make docs')
    import sys

    for arg in sys.argv[1:]:
        print(f"{arg}: {'updated' if write_reference(Path(arg)) else 'up to date'}")
