"""The UI's Jinja2 environment and static files, shared by every page module."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

HERE = Path(__file__).parent
STATIC_URL = "/ui/static"

templates = Jinja2Templates(directory=HERE / "templates")


def fmt_date(value: str | datetime | None) -> str:
    """A time as ``2026-12-02 04:30:00 UTC`` (the page's script shows it in local time)."""
    if value is None or value == "":
        return ""
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return moment.strftime("%Y-%m-%d %H:%M:%S") + (" UTC" if moment.utcoffset() is not None else "")


def fmt_duration(seconds: float | None) -> str:
    """``0.4s``, ``12s``, ``3m 4s``, ``2h 5m``, ``3d 4h`` (as airloop.js formatDuration)."""
    if seconds is None:
        return ""
    if seconds < 10:
        return f"{seconds:.1f}s"
    whole = round(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


def with_params(query: dict[str, Any], **changes: Any) -> str:
    """The query string ``query`` with ``changes`` applied (None removes a key); list
    values repeat the key (``tags=a&tags=b``)."""
    merged = {**query, **changes}
    pairs: list[tuple[str, Any]] = []
    for key, value in merged.items():
        if value is None or value == "" or value == []:
            continue
        values = value if isinstance(value, list | tuple) else [value]
        pairs.extend((key, v) for v in values)
    return urlencode(pairs)


templates.env.filters["fmt_date"] = fmt_date
templates.env.filters["fmt_duration"] = fmt_duration
templates.env.filters["with_params"] = with_params


def static_files() -> StaticFiles:
    return StaticFiles(directory=HERE / "static")


def render(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """A page: ``context`` plus the user and the CSRF token every page's scripts need."""
    user = getattr(request.state, "user", None)
    context.setdefault("user", user)
    context.setdefault("csrf_token", getattr(request.state, "csrf_token", ""))
    context.setdefault("static", STATIC_URL)
    return templates.TemplateResponse(request, name, context, status_code=status_code)
