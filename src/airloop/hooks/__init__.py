"""Async hooks: clients for external systems, shared per connection id within a process."""

from airloop.hooks.base import BaseHook

__all__ = ["BaseHook"]

# -- AWS S3 (issue 12) -- one block per area: explicit re-exports (needs airloop[aws])
from airloop.hooks.s3 import S3Hook as S3Hook
