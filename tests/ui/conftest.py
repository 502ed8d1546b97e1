"""Browser tests: a real airloop server (scheduler + API) in its own process, driven
by Debian's chromium through Playwright's sync API.

The server is ``airloop standalone`` (the scheduler and the API/UI in one process) on
loopback, on the free port it picks itself (``--port 0``; its log line says which), with a temporary home and a DAG folder holding ``tests/ui/dags``.

Chromium: ``make test`` installs it when missing (``make chromium``). Without it these
tests skip with the reason, except under CI (CI=true), where they fail.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
ARTIFACTS = REPO / ".ci" / "artifacts"
CHROMIUM = os.environ.get("AIRLOOP_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TEST_DAGS = ("ui_params", "ui_flaky", "ui_mapped")
#: Users made on a server with auth = "password" (role = name).
PASSWORDS = {"viewer": "viewer-password-1", "admin": "admin-password-1"}
START_TIMEOUT = 60.0
SERVING = re.compile(r"serving the API and UI on (http://127\.0\.0\.1:\d+)")


def on_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _no_browser(reason: str) -> None:
    if on_ci():
        pytest.fail(f"{reason}: CI needs it (make chromium installs it)", pytrace=False)
    pytest.skip(reason)


def _airloop() -> list[str]:
    return [sys.executable, "-m", "airloop"]


@dataclass
class Server:
    """A running airloop server: its URL, home, the processes and their output files."""

    url: str
    home: Path
    env: dict[str, str]
    #: auth = "password": the admin's API token (scripts send it as a bearer token).
    token: str | None = None
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    outputs: list[Path] = field(default_factory=list)

    @property
    def dags_folder(self) -> Path:
        return self.home / "dags"

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """A request to ``/api/v1`` as a script sends it: with the admin's bearer token
        (auth = password), else (auth = none) changes carry the double-submit CSRF
        cookie and header."""
        with httpx.Client(base_url=f"{self.url}/api/v1", timeout=30) as client:
            if self.token:
                client.headers["Authorization"] = f"Bearer {self.token}"
            elif method.upper() in ("POST", "PUT", "PATCH", "DELETE"):
                client.get("/version")  # sets the airloop_csrf cookie
                token = client.cookies.get("airloop_csrf", "")
                kwargs["headers"] = {"X-CSRF-Token": token, **kwargs.get("headers", {})}
            return client.request(method, path, **kwargs)

    def cli(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*_airloop(), *args],
            input=stdin,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def output(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-4000:]}" for p in self.outputs
        )

    def check_alive(self) -> None:
        for process in self.processes:
            if process.poll() is not None:
                raise AssertionError(
                    f"server process {process.args!r} exited with {process.returncode}:\n"
                    f"{self.output()}"
                )

    def wait_until(self, what: str, predicate: Any, timeout: float = START_TIMEOUT) -> Any:
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                value = predicate()
            except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
                value, last = None, exc
            if value:
                return value
            time.sleep(0.2)
        raise AssertionError(
            f"timed out waiting for {what} (last error: {last!r})\n{self.output()}"
        )

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def start_server(home: Path, *, auth: str = "none") -> Server:
    """Start an airloop server over a SQLite database in ``home``; returns once the API
    answers and the scheduler has parsed the test DAGs."""
    dags = home / "dags"
    dags.mkdir(parents=True)
    for name in TEST_DAGS:
        shutil.copy(HERE / "dags" / f"{name}.py", dags / f"{name}.py")
    env = {
        **os.environ,
        "AIRLOOP_HOME": str(home),
        "AIRLOOP_DAGS_FOLDER": str(dags),
        "AIRLOOP_SCHEDULER_POLL_INTERVAL": "0.2",
        "AIRLOOP_API__HOST": "127.0.0.1",
        "AIRLOOP_API__PORT": "0",
        "AIRLOOP_API__AUTH": auth,
        "AIRLOOP_API__SECRET_KEY": "browser-tests-secret-key",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("AIRLOOP_CONFIG", None)
    server = Server(url="", home=home, env=env)
    migrated = server.cli("db", "migrate")
    assert migrated.returncode == 0, migrated.stderr
    if auth == "password":
        _make_users(server)

    def spawn(name: str, args: list[str]) -> None:
        log = home / f"{name}.out"
        server.outputs.append(log)
        with log.open("wb") as sink:
            server.processes.append(
                subprocess.Popen(args, env=env, stdout=sink, stderr=subprocess.STDOUT, cwd=home)
            )

    try:
        spawn("standalone", [*_airloop(), "standalone"])
        server.url = server.wait_until("the server's address", lambda: _served_url(server))
        server.wait_until("the API server", lambda: server.api("GET", "/health").status_code == 200)
        server.wait_until("the test DAGs in /api/v1/dags", lambda: _has_test_dags(server))
    except BaseException:
        server.stop()
        raise
    return server


def _served_url(server: Server) -> str | None:
    """The address in the line "serving the API and UI on http://127.0.0.1:PORT"."""
    found = SERVING.search(server.outputs[0].read_text(errors="replace"))
    return found.group(1) if found else None


def _make_users(server: Server) -> None:
    """``airloop users create`` for each of PASSWORDS, and an API token for the admin."""
    for name, password in PASSWORDS.items():
        made = server.cli(
            "users",
            "create",
            "--username",
            name,
            "--role",
            name,
            "--password-stdin",
            stdin=password + "\n",
        )
        assert made.returncode == 0, made.stdout + made.stderr
    token = server.cli("users", "token", "create", "--username", "admin", "--name", "tests")
    assert token.returncode == 0, token.stdout + token.stderr
    server.token = token.stdout.split()[-1]


def _has_test_dags(server: Server) -> bool:
    response = server.api("GET", "/dags", params={"limit": 1000})
    if response.status_code != 200:
        return False
    ids = {d["dag_id"] for d in response.json()["items"]}
    return set(TEST_DAGS) <= ids


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the session (auth = none: every request is the admin)."""
    srv = start_server(tmp_path_factory.mktemp("airloop-ui"))
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="session")
def browser_context_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Makes fresh chromium contexts (each its own user-data dir, so its own cookies)."""
    if not Path(CHROMIUM).exists():
        _no_browser(f"chromium not found at {CHROMIUM}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:  # pragma: no cover - a dev dependency
        _no_browser(f"playwright not importable: {exc}")
    contexts: list[Any] = []
    with sync_playwright() as pw:

        def make() -> Any:
            context = pw.chromium.launch_persistent_context(
                str(tmp_path_factory.mktemp("chromium-profile")),
                executable_path=CHROMIUM,
                headless=True,
                args=CHROMIUM_ARGS,
                viewport={"width": 1280, "height": 800},
            )
            context.set_default_timeout(15_000)
            contexts.append(context)
            return context

        try:
            yield make
        finally:
            for context in contexts:
                context.close()


@pytest.fixture
def page(browser_context_factory: Any) -> Iterator[Any]:
    """A page in a fresh browser context. Script errors are collected on
    ``page.console_errors``, answers >= 400 as "STATUS URL" on ``page.http_errors``
    (a favicon aside: the browser asks for one by itself)."""
    context = browser_context_factory()
    pg = context.new_page()
    errors: list[str] = []
    http_errors: list[str] = []

    def console(message: Any) -> None:
        # The answer's URL is in http_errors; this line would only repeat it without.
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            errors.append(message.text)

    def response(answer: Any) -> None:
        if answer.status >= 400 and not answer.url.endswith("/favicon.ico"):
            http_errors.append(f"{answer.status} {answer.url}")

    pg.on("console", console)
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.on("response", response)
    pg.console_errors = errors
    pg.http_errors = http_errors
    try:
        yield pg
    finally:
        context.close()


def screenshot(page: Any, name: str) -> Path:
    """Save a full-page screenshot under .ci/artifacts/ (gitignored)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
