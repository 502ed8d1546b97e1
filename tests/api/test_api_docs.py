"""The interactive API docs are served from the package, with no inline script."""

from __future__ import annotations

import httpx

from .ui_support import assert_csp_clean


async def test_the_docs_page_and_its_assets_come_from_this_server(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/api/v1/docs")
    assert page.status_code == 200
    assert "cdn" not in page.text.lower()
    assert_csp_clean(page.text)
    for asset in ("swagger-ui.css", "swagger-ui-bundle.js"):
        response = await client.get(f"/api/v1/docs/assets/{asset}")
        assert response.status_code == 200, asset
    assert (await client.get("/ui/static/api_docs.js")).status_code == 200
