"""The API's routers, one module per resource (dags, runs, task instances...)."""
