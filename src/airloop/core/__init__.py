"""The pure core: states, trigger rules, retry policy and the planner.

Nothing in this package does I/O or touches an event loop; every decision the
scheduler makes about a DAG run is computed here and can be tested with plain data.
"""
