"""Every route says who may call it: changes need an admin, reads any signed-in user
(the authentication middleware checks first; the routes' dependencies say it again,
so a route moved out from behind the middleware is still guarded); and the server
imports none of the dev dependencies."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from airloop.api import api_docs, metrics
from airloop.api.app import API_PREFIX
from airloop.api.auth.middleware import OPEN_PATHS
from airloop.api.deps import admin_user, current_user
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

GUARDED = (
    dags,
    runs,
    task_instances,
    logs,
    monitor,
    dag_actions,
    pools,
    connections,
    variables,
    metrics,
    api_docs,
    pages_main,
    pages_admin,
    pages_dag,
    pages_run,
    stream,
    stream_dags,
)
CHANGES = {"POST", "PUT", "PATCH", "DELETE"}
#: Open to anyone (the middleware's OPEN_PATHS say so too): load balancers, monitors.
OPEN = {"/health"}


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any] | None]:
    yield dependant.call
    for sub in dependant.dependencies:
        yield from _calls(sub)


def _routes() -> Iterator[APIRoute]:
    for module in GUARDED:
        for route in module.router.routes:
            assert isinstance(route, APIRoute), route
            yield route


def test_changes_need_an_admin_and_reads_a_user() -> None:
    seen = 0
    for route in _routes():
        calls = set(_calls(route.dependant))
        if route.path in OPEN:
            assert API_PREFIX + route.path in OPEN_PATHS
        elif route.methods & CHANGES:
            assert admin_user in calls, f"{route.methods} {route.path} has no AdminDep"
        else:
            assert current_user in calls, f"{route.methods} {route.path} has no ViewerDep"
        seen += 1
    assert seen > 50


def test_the_server_imports_no_dev_dependency() -> None:
    # httpx and playwright are dev dependencies: the server must not need them (the
    # UI's pages once reached the API through httpx's ASGI transport).
    code = (
        "import sys, airloop.api.app, airloop.api.standalone\n"
        "print(','.join(m for m in ('httpx', 'playwright') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""
