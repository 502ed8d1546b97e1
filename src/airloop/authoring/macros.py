"""``macros`` in templates and the context: Airflow's, under Airflow's names.

``{{ macros.ds_add(ds, 7) }}``, ``{{ macros.ds_format(ds, "%Y-%m-%d", "%d/%m/%Y") }}``,
and the modules ``datetime``, ``timedelta``, ``dateutil``, ``time``, ``uuid``,
``random`` and ``json``.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from datetime import datetime, timedelta

import dateutil  # type: ignore[import-untyped]
import dateutil.parser  # type: ignore[import-untyped]
import dateutil.relativedelta  # type: ignore[import-untyped]
import dateutil.tz  # type: ignore[import-untyped]

__all__ = [
    "datetime",
    "dateutil",
    "ds_add",
    "ds_format",
    "json",
    "random",
    "time",
    "timedelta",
    "uuid",
]


def ds_add(ds: str, days: int) -> str:
    """``ds`` (``YYYY-MM-DD``) moved by ``days``: ``ds_add("2026-01-01", 5)`` is ``2026-01-06``."""
    if not days:
        return str(ds)
    moved = datetime.strptime(str(ds), "%Y-%m-%d") + timedelta(days=days)
    return moved.strftime("%Y-%m-%d")


def ds_format(ds: str, input_format: str, output_format: str) -> str:
    """``ds`` read with ``input_format``, written with ``output_format``."""
    return datetime.strptime(str(ds), input_format).strftime(output_format)
