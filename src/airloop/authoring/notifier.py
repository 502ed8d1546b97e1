"""``BaseNotifier``: a reusable callback with templated fields (Airflow's notifiers).

Subclass it, implement ``notify(context)`` (``def`` or ``async def``) and list the
attributes to render in ``template_fields``. An instance is given wherever a callback
is (``on_failure_callback=SlackNotifier(text="{{ ti.task_id }} failed")``): the
fields are rendered with the callback's context (on a copy: the instance in the DAG is
shared by every run), then ``notify`` is called with that context.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar


class BaseNotifier:
    """Base class of notifiers: ``notify(context)`` after ``template_fields`` are rendered."""

    #: Attributes rendered as Jinja templates (with the callback's context) before notify.
    template_fields: ClassVar[Sequence[str]] = ()

    def notify(self, context: Mapping[str, Any]) -> Any:
        """Send the notification. May be ``async def``."""
        raise NotImplementedError(f"{type(self).__name__} must implement notify(context)")

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.notify)

    def render_template_fields(self, context: Mapping[str, Any]) -> BaseNotifier:
        """A copy with the template fields rendered (blocking: user macros, files)."""
        if not self.template_fields:
            return self
        from airloop.authoring.templating import render_object

        rendered: BaseNotifier = render_object(self, context)
        return rendered

    def __call__(self, context: Mapping[str, Any]) -> Any:
        """Render, then notify (the engine renders off the event loop and calls notify)."""
        return self.render_template_fields(context).notify(context)
