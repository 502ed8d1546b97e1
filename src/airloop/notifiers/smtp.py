"""``SmtpNotifier``: email as a callback (Airflow's SMTP provider's notifier)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from airloop.authoring.notifier import BaseNotifier
from airloop.exceptions import DagDefinitionError
from airloop.hooks.smtp import SmtpHook

#: Used when no subject is given: works for task and DAG callbacks alike.
DEFAULT_SUBJECT = (
    "airloop: DAG {{ dag.dag_id }}{% if ti is defined %} task {{ ti.task_id }}{% endif %}"
    " run {{ run_id }}: {{ reason }}"
)
DEFAULT_HTML = (
    "<p>DAG <b>{{ dag.dag_id }}</b>, run <b>{{ run_id }}</b>"
    "{% if ti is defined %}, task <b>{{ ti.task_id }}</b> (try {{ ti.try_number }}){% endif %}"
    ": {{ reason }}</p>"
    "{% if exception is defined %}<pre>{{ exception }}</pre>{% endif %}"
)


class SmtpNotifier(BaseNotifier):
    """Send an email: ``on_failure_callback=SmtpNotifier(to="ops@example.com")``.

    ``to``, ``from_email``, ``subject``, ``html_content``, ``files``, ``cc`` and
    ``bcc`` are templates rendered with the callback's context.
    """

    template_fields: ClassVar[tuple[str, ...]] = (
        "from_email",
        "to",
        "subject",
        "html_content",
        "files",
        "cc",
        "bcc",
        "custom_headers",
    )

    def __init__(
        self,
        to: str | Iterable[str],
        from_email: str | None = None,
        smtp_conn_id: str = "smtp_default",
        subject: str | None = None,
        html_content: str | None = None,
        files: list[str] | None = None,
        cc: str | Iterable[str] | None = None,
        bcc: str | Iterable[str] | None = None,
        mime_subtype: str = "mixed",
        mime_charset: str = "utf-8",
        custom_headers: Mapping[str, Any] | None = None,
    ) -> None:
        if mime_subtype != "mixed":
            raise DagDefinitionError(
                f"SmtpNotifier: mime_subtype {mime_subtype!r} is not supported (only 'mixed')"
            )
        self.to = to
        self.from_email = from_email
        self.smtp_conn_id = smtp_conn_id
        self.subject = DEFAULT_SUBJECT if subject is None else subject
        self.html_content = DEFAULT_HTML if html_content is None else html_content
        self.files = files or []
        self.cc = cc
        self.bcc = bcc
        self.mime_subtype = mime_subtype
        self.mime_charset = mime_charset
        self.custom_headers = dict(custom_headers or {})

    async def notify(self, context: Mapping[str, Any]) -> None:
        await SmtpHook(self.smtp_conn_id).send_email_smtp(
            to=self.to,
            subject=self.subject,
            html_content=self.html_content,
            from_email=self.from_email,
            files=self.files,
            cc=self.cc,
            bcc=self.bcc,
            mime_subtype=self.mime_subtype,
            mime_charset=self.mime_charset,
            custom_headers=self.custom_headers,
        )
