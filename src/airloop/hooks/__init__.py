"""Async hooks: clients for external systems, shared per connection id within a process."""

from airloop.hooks.base import BaseHook

# HTTP (issue 12)
from airloop.hooks.http import HttpError, HttpHook, HttpResponse
from airloop.hooks.smtp import SmtpHook

__all__ = ["BaseHook"]
# HTTP (issue 12)
__all__ += ["HttpError", "HttpHook", "HttpResponse", "SmtpHook"]
