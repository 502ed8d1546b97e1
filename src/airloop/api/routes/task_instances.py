"""/api/v1: task_instances (issue 13; filled in by its branch)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
