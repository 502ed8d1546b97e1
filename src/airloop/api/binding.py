"""Where the API server may listen: loopback always, any other address only with a
login (``[api] auth = "password"``). Without one every request is the admin, so the
server must not be reachable from another machine."""

from __future__ import annotations

import ipaddress

from airloop.exceptions import AirloopError
from airloop.settings import Settings

_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def is_loopback(host: str) -> bool:
    """Is ``host`` (an address or a name) this machine only? ``0.0.0.0``/``::`` are not."""
    name = host.strip().strip("[]").lower()
    if name in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False  # another host name: it may resolve to a public address


def check_bind(host: str, settings: Settings) -> None:
    """Refuse a non-loopback ``host`` unless the API asks for a login."""
    if is_loopback(host) or settings.api.auth != "none":
        return
    raise AirloopError(
        f"refusing to listen on {host}: with [api] auth = 'none' every request is the "
        "admin, so only a loopback address (127.0.0.1, ::1, localhost) is allowed; "
        "set [api] auth = 'password' (AIRLOOP_API__AUTH=password) to listen on other addresses"
    )
