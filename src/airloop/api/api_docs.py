"""The interactive API documentation at ``/api/v1/docs``: Swagger UI from the
``swagger-ui-bundle`` package, served by this server (never a CDN), started by a
script of ours rather than FastAPI's inline one, so the page passes the CSP."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

from airloop.api.deps import current_user
from airloop.api.ui.templating import STATIC_URL

ASSETS_URL = "/api/v1/docs/assets"

#: Behind the authentication middleware; the dependency says so again (any user).
router = APIRouter(dependencies=[Depends(current_user)])

_PAGE = f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>airloop API</title>
  <link rel="stylesheet" href="{ASSETS_URL}/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui" data-openapi-url="/api/v1/openapi.json"></div>
  <script src="{ASSETS_URL}/swagger-ui-bundle.js"></script>
  <script src="{STATIC_URL}/api_docs.js"></script>
</body>
</html>
"""


@router.get("/api/v1/docs", include_in_schema=False)
async def api_docs() -> HTMLResponse:
    return HTMLResponse(_PAGE)


def assets() -> StaticFiles:
    return StaticFiles(directory=swagger_ui_path)
