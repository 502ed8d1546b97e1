"""The web UI: server-rendered pages (Jinja2) with small vendored scripts for the grid,
the graph, Gantt bars and live updates. Everything ships in the package; nothing is
fetched from a CDN (ADR 0037)."""
