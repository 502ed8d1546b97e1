"""Serve the API and UI with uvicorn, from the AIRLOOP_* settings (used by the browser
tests and benchmarks/ui.py where the ``airloop api-server`` command is not there)."""

from __future__ import annotations

import uvicorn

from airloop.api.app import create_app
from airloop.settings import load_settings


def main() -> None:
    settings = load_settings()
    app = create_app(settings)
    uvicorn.run(app, host=settings.api.host, port=settings.api.port, log_level="warning")


if __name__ == "__main__":
    main()
