"""Helpers for the UI page tests: the CSP rules a page must keep, and a viewer."""

from __future__ import annotations

import re

from airloop.api.auth.passwords import hash_password
from airloop.store.runs import Store
from airloop.store.users import UserStore

_SCRIPT = re.compile(r"<script\b([^>]*)>(.*?)</script>", re.S | re.I)


def assert_csp_clean(html: str) -> None:
    """No inline code the CSP would block: every <script> has a src or is a JSON data
    block; no on* handler attributes, no style attributes or <style> elements."""
    for attrs, body in _SCRIPT.findall(html):
        if 'type="application/json"' in attrs:
            continue
        assert "src=" in attrs, f"inline script: <script{attrs}>{body[:80]}"
        assert not body.strip(), f"a script with src and a body: <script{attrs}>"
    assert not re.search(r"<[^>]+\son[a-z]+\s*=", html), "inline event handler"
    assert not re.search(r"<[^>]+\sstyle\s*=", html), "inline style attribute"
    assert "<style" not in html.lower()


async def viewer_token(store: Store, username: str = "vera") -> str:
    """A viewer user and an API token of theirs (the secret)."""
    users = UserStore(store.engine)
    await users.create_user(username, await hash_password("a long enough password"), "viewer")
    secret, _ = await users.create_token(username, "ui-test")
    return secret
