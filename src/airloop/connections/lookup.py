"""The lookup every hook, template and CLI command uses: the configured sources, in order.

The order is Airflow's: the environment, then the secrets backend when the
``secrets_backend`` setting names one, then the metadata database. Sources are built
from the settings in effect: the running engine's (``runtime.current_resources``) in
task code, else those given to ``configured_sources(settings)``, else
``load_settings()`` once (a script). One set of sources is kept per configuration.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import importlib
import inspect
import json
import threading
from collections.abc import Callable, Coroutine, Sequence
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, TypeVar

from airloop.connections.model import Connection
from airloop.connections.sources import (
    EnvironmentSource,
    SecretsSource,
    find_connection,
    find_variable,
)
from airloop.exceptions import AirloopError
from airloop.runtime import current_resources

if TYPE_CHECKING:
    from airloop.connections.metastore import MetastoreSource
    from airloop.settings import Settings

T = TypeVar("T")

#: How often a sync lookup waiting on the engine's loop checks that the loop still runs.
_WAIT_SLICE = 1.0

_configured: list[SecretsSource] | None = None
#: Sources built from settings, per (database_url, fernet_key, backend, kwargs).
_built: dict[tuple[str, str, str, str], list[SecretsSource]] = {}
_built_lock = threading.Lock()
#: Settings read by load_settings() for lookups outside an engine (a script).
_loaded: Settings | None = None

#: The event loop that owns the lookups of the task code running here (set by the
#: executors' runner). A sync lookup from a worker thread hands its coroutine to this
#: loop (its AWS clients, its database) and waits in the thread, never on the loop.
lookup_loop: ContextVar[asyncio.AbstractEventLoop | None] = ContextVar(
    "airloop_lookup_loop", default=None
)


class SecretsBackendError(AirloopError):
    """The ``secrets_backend`` setting names a class that cannot be loaded or built."""


def current_settings() -> Settings:
    """The settings lookups use here: the running engine's in task code, else those a
    script's ``load_settings()`` gives (read once)."""
    return _settings()


def _settings() -> Settings:
    resources = current_resources.get()
    if resources is not None:
        settings: Settings = resources.settings
        return settings
    global _loaded
    if _loaded is None:
        from airloop.settings import load_settings

        _loaded = load_settings()
    return _loaded


def load_backend(path: str, kwargs: dict[str, Any]) -> SecretsSource:
    """The backend class named by ``path`` (``package.module.Class``), built with
    ``kwargs``. Loaded by import string: backends live in higher layers (providers)."""
    where = f"secrets_backend {path!r}"
    module_name, _, class_name = path.rpartition(".")
    if not module_name:
        raise SecretsBackendError(f"{where}: not a class path (package.module.Class)")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SecretsBackendError(f"{where}: cannot import {module_name}: {exc}") from None
    cls = getattr(module, class_name, None)
    if not inspect.isclass(cls):
        raise SecretsBackendError(f"{where}: {module_name} has no class {class_name}")
    for method in ("get_connection", "get_variable"):
        if not inspect.iscoroutinefunction(getattr(cls, method, None)):
            raise SecretsBackendError(f"{where}: {class_name}.{method} must be an async method")
    try:
        backend: Any = cls(**kwargs)
    except TypeError as exc:
        raise SecretsBackendError(f"{where}: bad secrets_backend_kwargs: {exc}") from None
    if not isinstance(getattr(backend, "name", None), str):
        backend.name = class_name
    source: SecretsSource = backend
    return source


def configured_sources(settings: Settings | None = None) -> list[SecretsSource]:
    """The sources in lookup order (the environment first)."""
    if _configured is not None:
        return list(_configured)
    if settings is None:
        settings = _settings()
    key = (
        settings.database_url,
        settings.fernet_key,
        settings.secrets_backend,
        json.dumps(settings.secrets_backend_kwargs, sort_keys=True, default=str),
    )
    with _built_lock:
        sources = _built.get(key)
        if sources is None:
            from airloop.connections.metastore import MetastoreSource

            sources = [EnvironmentSource()]
            if settings.secrets_backend:
                sources.append(
                    load_backend(settings.secrets_backend, dict(settings.secrets_backend_kwargs))
                )
            sources.append(MetastoreSource(settings.database_url, settings.fernet_key))
            _built[key] = sources
    return list(sources)


def metastore(settings: Settings | None = None) -> MetastoreSource:
    """The metadata database source of the configured sources (where writes go)."""
    from airloop.connections.metastore import MetastoreSource

    for source in configured_sources(settings):
        if isinstance(source, MetastoreSource):
            return source
    raise AirloopError("no metadata database among the configured connection sources")


def set_sources(sources: Sequence[SecretsSource] | None) -> None:
    """Replace the lookup order (None restores the sources built from settings)."""
    global _configured
    _configured = None if sources is None else list(sources)


async def aget_connection(conn_id: str) -> Connection:
    return await find_connection(conn_id, configured_sources())


async def aget_variable_text(key: str) -> str | None:
    return await find_variable(key, configured_sources())


def run_lookup(make: Callable[[], Coroutine[Any, Any, T]], what: str) -> T:
    """Run a lookup coroutine from sync code off the event loop.

    In a worker thread of a running engine the coroutine runs on the engine's loop
    (``lookup_loop``) while this thread waits; elsewhere (a script, a worker process's
    sync code) on a loop of its own. On the loop's own thread it raises instead of
    blocking every task.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise AirloopError(
            f"{what} called on the event loop, where it would block every task: "
            "use the async form ('await ...') in async code"
        )
    loop = lookup_loop.get()
    if loop is not None and loop.is_running() and not loop.is_closed():
        future = asyncio.run_coroutine_threadsafe(make(), loop)
        # Wait in slices: an engine that stops before the lookup ends must not leave
        # this thread waiting forever on a loop that will never run it.
        while True:
            try:
                return future.result(timeout=_WAIT_SLICE)
            except concurrent.futures.TimeoutError:
                if future.done():  # the lookup itself raised TimeoutError
                    raise
                if not loop.is_running():
                    future.cancel()
                    raise AirloopError(
                        f"{what}: the engine's event loop stopped before the lookup finished"
                    ) from None
    return asyncio.run(make())
