"""The UI's Jinja2 environment and static files, shared by every page module."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

HERE = Path(__file__).parent
STATIC_URL = "/ui/static"

templates = Jinja2Templates(directory=HERE / "templates")


def static_files() -> StaticFiles:
    return StaticFiles(directory=HERE / "static")


def render(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """A page: ``context`` plus the user and the CSRF token every page's scripts need."""
    user = getattr(request.state, "user", None)
    context.setdefault("user", user)
    context.setdefault("csrf_token", getattr(request.state, "csrf_token", ""))
    context.setdefault("static", STATIC_URL)
    return templates.TemplateResponse(request, name, context, status_code=status_code)
