"""Where the API server may listen: loopback always; elsewhere only with a login."""

from __future__ import annotations

from pathlib import Path

import pytest

from airloop.api.binding import check_bind, is_loopback
from airloop.exceptions import AirloopError
from airloop.settings import Settings


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost", "LOCALHOST"]
)
def test_loopback_is_always_allowed(host: str, tmp_path: Path) -> None:
    assert is_loopback(host)
    check_bind(host, Settings(home=tmp_path))


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "example.org", ""])
def test_anything_else_needs_password_auth(host: str, tmp_path: Path) -> None:
    assert not is_loopback(host)
    with pytest.raises(
        AirloopError, match=f"refusing to listen on {host}: with \\[api\\] auth = 'none'"
    ):
        check_bind(host, Settings(home=tmp_path))
    check_bind(host, Settings(home=tmp_path, api={"auth": "password"}))
