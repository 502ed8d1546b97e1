"""auth = "password": a viewer sees no trigger button, and forged requests (no CSRF
token, or from another origin) are refused."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from .conftest import PASSWORDS, Server, screenshot, start_server


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """auth = "password", with the users "viewer" and "admin" (airloop users create)."""
    server = start_server(tmp_path_factory.mktemp("airloop-auth"), auth="password")
    try:
        yield server
    finally:
        server.stop()


def login(server: Server, page: Any, username: str) -> None:
    page.goto(f"{server.url}/login")
    page.fill('[name="username"]', username)
    page.fill('[name="password"]', PASSWORDS[username])
    page.locator("form button[type=submit]").click()
    page.wait_for_url(lambda url: "/login" not in url)


def run_ids(page: Any, server: Server) -> set[str]:
    """The DAG's runs as the signed-in browser sees them (the session cookie)."""
    response = page.request.get(f"{server.url}/api/v1/dags/ui_params/dagRuns")
    assert response.status == 200, response.text()
    return {r["run_id"] for r in response.json()["items"]}


def test_pages_need_a_login(auth_server: Server, page: Any) -> None:
    page.goto(f"{auth_server.url}/dags")
    page.wait_for_url("**/login**")
    assert page.locator('[name="password"]').count() == 1
    screenshot(page, "login")
    with httpx.Client() as anonymous:
        assert anonymous.get(f"{auth_server.url}/api/v1/dags").status_code == 401


def test_viewer_sees_no_trigger_and_cannot_trigger(auth_server: Server, page: Any) -> None:
    login(auth_server, page, "viewer")
    page.goto(f"{auth_server.url}/dags")
    page.wait_for_selector('#dag-list tr[data-dag-id="ui_params"]')
    assert page.locator("#dag-list a.trigger").count() == 0
    screenshot(page, "dags-viewer")
    before = run_ids(page, auth_server)
    # Even with the page's own CSRF token, a viewer may not change anything.
    status = page.evaluate(
        """async () => {
            const token = document.querySelector('meta[name="csrf-token"]').content;
            const r = await fetch('/api/v1/dags/ui_params/dagRuns', {
                method: 'POST',
                headers: {'Content-Type': 'application/json', 'X-CSRF-Token': token},
                body: JSON.stringify({conf: {}}),
            });
            return r.status;
        }"""
    )
    assert status == 403
    page.goto(f"{auth_server.url}/dags/ui_params/trigger")
    assert page.locator("#trigger-form button[type=submit]").count() == 0
    assert run_ids(page, auth_server) == before


def test_admin_request_without_csrf_token_is_refused(auth_server: Server, page: Any) -> None:
    login(auth_server, page, "admin")
    page.goto(f"{auth_server.url}/dags")
    page.wait_for_selector('#dag-list tr[data-dag-id="ui_params"] a.trigger')
    before = run_ids(page, auth_server)
    post = """async (token) => {
        const headers = {'Content-Type': 'application/json'};
        if (token) headers['X-CSRF-Token'] = token;
        const r = await fetch('/api/v1/dags/ui_params/dagRuns', {
            method: 'POST', headers, body: JSON.stringify({conf: {}}),
        });
        return r.status;
    }"""
    assert page.evaluate(post, None) == 403
    assert page.evaluate(post, "forged-token") == 403
    assert run_ids(page, auth_server) == before
    # The same request with the page's token works: the refusals were the token's.
    token = page.get_attribute('meta[name="csrf-token"]', "content")
    assert page.evaluate(post, token) == 201
    assert len(run_ids(page, auth_server) - before) == 1


@pytest.fixture
def other_origin() -> Iterator[tuple[str, dict[str, bytes]]]:
    """A web server of another origin on loopback (another port: the same site, so the
    browser sends airloop's cookies along). Serves the pages put in the dict."""
    pages: dict[str, bytes] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = pages.get(self.path, b"not found")
            self.send_response(200 if self.path in pages else 404)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return None

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", pages
    finally:
        httpd.shutdown()
        thread.join()
        httpd.server_close()


def test_request_from_another_origin_is_refused(
    auth_server: Server, page: Any, other_origin: tuple[str, dict[str, bytes]]
) -> None:
    """A page on another origin posts to the API (and to the trigger form, if it posts)
    with the signed-in admin's cookie: the server refuses."""
    login(auth_server, page, "admin")
    page.goto(f"{auth_server.url}/dags/ui_params/trigger")
    has_action = page.evaluate("document.querySelector('#trigger-form').hasAttribute('action')")
    action = page.evaluate("document.querySelector('#trigger-form').action")
    method = page.evaluate("document.querySelector('#trigger-form').method")
    before = run_ids(page, auth_server)
    target = auth_server.url
    form = (
        f"""<form id="f" method="post" action="{action}">
          <input name="count" value="7"><input name="greeting" value="pwned">
          <input name="csrf_token" value="forged"></form>"""
        if has_action and method == "post"
        else ""  # the page's form posts through script: the API request covers it
    )
    evil_origin, pages = other_origin
    pages["/evil.html"] = f"""<!doctype html><html><body>{form}
      <script>
        window.results = [];
        fetch('{target}/api/v1/dags/ui_params/dagRuns', {{
          method: 'POST', mode: 'no-cors', credentials: 'include',
          headers: {{'Content-Type': 'text/plain'}}, body: '{{"conf": {{}}}}',
        }}).then(() => window.results.push('sent'), (e) => window.results.push(String(e)));
      </script></body></html>""".encode()
    statuses: dict[str, int] = {}

    def seen(response: Any) -> None:
        if response.request.method == "POST" and response.url.startswith(target):
            statuses[response.url] = response.status

    page.on("response", seen)
    page.goto(f"{evil_origin}/evil.html")
    page.wait_for_function("window.results.length === 1")
    assert page.evaluate("window.results") == ["sent"]  # the browser sent it
    if form:
        with page.expect_navigation():
            page.evaluate("document.getElementById('f').submit()")
    assert f"{target}/api/v1/dags/ui_params/dagRuns" in statuses
    assert len(statuses) == (2 if form else 1)
    assert set(statuses.values()) == {403}, statuses
    assert run_ids(page, auth_server) == before
