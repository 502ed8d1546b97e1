"""The HTTP API (``/api/v1``) and the web UI, served by FastAPI on uvicorn (ADR 0037).

A layer of its own between the scheduler service and the CLI: it reads the metadata
database through its own store (its own connection pool, never the scheduler's write
path) and changes things (trigger, clear, pause...) the way the CLI does.
"""
