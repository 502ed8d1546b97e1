"""Executors: one API (base.py), one module per backend.

The names they go by are ``airloop.core.executor_names.EXECUTOR_NAMES``; the
implementations are imported only when an engine first needs them.
"""

from airloop.core.executor_names import EXECUTOR_NAMES

__all__ = ["EXECUTOR_NAMES"]
