"""Async hooks: clients for external systems, shared per connection id within a process."""

from airloop.hooks.base import BaseHook

__all__ = ["BaseHook"]
