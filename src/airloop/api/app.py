"""The application factory: one FastAPI app serving ``/api/v1``, the UI and ``/metrics``."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from fastapi import FastAPI

from airloop import __version__
from airloop.api import api_docs, metrics
from airloop.api.auth import routes as auth_routes
from airloop.api.auth.headers import SecurityHeadersMiddleware
from airloop.api.auth.limits import BodyLimitMiddleware
from airloop.api.auth.middleware import AuthMiddleware
from airloop.api.auth.sessions import SessionCodec
from airloop.api.request_limit import RequestLimitMiddleware
from airloop.api.routes import (
    connections,
    dag_actions,
    dags,
    logs,
    monitor,
    pools,
    runs,
    task_instances,
    variables,
)
from airloop.api.ui import pages_admin, pages_dag, pages_main, pages_run, stream, stream_dags
from airloop.api.ui.templating import STATIC_URL, static_files
from airloop.core.masking import parse_sensitive_names, set_sensitive_names
from airloop.settings import Settings
from airloop.store.runs import Store

API_PREFIX = "/api/v1"


def session_codec(settings: Settings) -> SessionCodec:
    """Signs session cookies with ``api.secret_key``, else a random key of this app
    (sessions then end when the server restarts)."""
    key: str | bytes = settings.api.secret_key or secrets.token_bytes(32)
    return SessionCodec(key, timedelta(hours=settings.api.session_hours))


def create_app(
    settings: Settings,
    *,
    store: Store | None = None,
    request_limit: int | None = None,
    **extra: Any,
) -> FastAPI:
    """The app. ``store``: use this open store (tests, ``standalone``); otherwise the
    app opens its own at startup and closes it at shutdown. ``request_limit``: at most
    this many requests handled at once (``standalone``: the API's share of the
    scheduler's loop, ADR 0040). ``extra`` goes on ``app.state`` (``standalone`` passes
    its scheduler service as ``scheduler``)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own = store is None
        app.state.store = store or await Store.open(
            settings.database_url, pool_size=settings.api.pool_size, max_overflow=0
        )
        try:
            yield
        finally:
            if own:
                await app.state.store.close()

    app = FastAPI(
        title="airloop",
        version=__version__,
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=None,  # served by api_docs: vendored assets, no inline script
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.settings = settings
    # Process-wide, as the engine sets it: masked connection extras and variables too.
    set_sensitive_names(parse_sensitive_names(settings.sensitive_var_conn_names))
    if store is not None:  # usable without the lifespan (tests' ASGI transport)
        app.state.store = store
    for key, value in extra.items():
        setattr(app.state, key, value)
    app.state.session_codec = codec = session_codec(settings)
    # Outermost last: headers on every answer, then the body limit, then who is asking.
    app.add_middleware(AuthMiddleware, settings=settings.api, codec=codec)
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=settings.api.max_body_bytes)
    app.add_middleware(SecurityHeadersMiddleware)
    if request_limit is not None:
        # Outermost of all: a request waiting for its turn has cost nothing yet.
        app.add_middleware(RequestLimitMiddleware, limit=request_limit)
    app.include_router(auth_routes.api, prefix=API_PREFIX)
    app.include_router(auth_routes.pages, include_in_schema=False)
    for module in (
        dags,
        runs,
        task_instances,
        logs,
        monitor,
        dag_actions,
        pools,
        connections,
        variables,
    ):
        app.include_router(module.router, prefix=API_PREFIX)
    app.include_router(metrics.router, include_in_schema=False)
    for page in (pages_main, pages_admin, pages_dag, pages_run, stream, stream_dags):
        app.include_router(page.router, include_in_schema=False)
    app.include_router(api_docs.router)
    app.mount(api_docs.ASSETS_URL, api_docs.assets(), name="api-docs-assets")
    app.mount(STATIC_URL, static_files(), name="static")
    return app
