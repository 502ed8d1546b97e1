"""``EmailOperator``: send an email (Airflow's arguments) through an SMTP connection."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from airloop.authoring.context import Context
from airloop.authoring.operator import BaseOperator
from airloop.exceptions import DagDefinitionError
from airloop.hooks.smtp import SmtpHook


class EmailOperator(BaseOperator):
    """Send an HTML email; ``files`` are attached (read off the event loop).

    ``to``, ``cc`` and ``bcc`` are a list or a string of addresses separated by ``,``
    or ``;``. ``from_email`` defaults to the connection's extra ``from_email`` (or its
    login). ``html_content`` may name a ``.html`` template file, as in Airflow.
    """

    template_fields: ClassVar[tuple[str, ...]] = (
        "to",
        "from_email",
        "subject",
        "html_content",
        "files",
        "cc",
        "bcc",
    )
    template_fields_renderers: ClassVar[Mapping[str, str]] = {"html_content": "html"}
    template_ext: ClassVar[tuple[str, ...]] = (".html",)

    def __init__(
        self,
        *,
        to: list[str] | str,
        subject: str,
        html_content: str,
        files: list[str] | None = None,
        cc: list[str] | str | None = None,
        bcc: list[str] | str | None = None,
        mime_subtype: str = "mixed",
        mime_charset: str = "utf-8",
        conn_id: str = "smtp_default",
        custom_headers: dict[str, Any] | None = None,
        from_email: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if mime_subtype != "mixed":
            raise DagDefinitionError(
                f"task {self.task_id!r}: mime_subtype {mime_subtype!r} is not supported "
                "(only 'mixed', Airflow's default)"
            )
        self.to = to
        self.subject = subject
        self.html_content = html_content
        self.files = files or []
        self.cc = cc
        self.bcc = bcc
        self.mime_subtype = mime_subtype
        self.mime_charset = mime_charset
        self.conn_id = conn_id
        self.custom_headers = custom_headers
        self.from_email = from_email

    async def execute(self, context: Context) -> None:
        await SmtpHook(self.conn_id).send_email_smtp(
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
        context.log.info("sent email %r to %s", self.subject, self.to)
