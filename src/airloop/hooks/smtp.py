"""``SmtpHook``: send email with aiosmtplib through an SMTP connection.

The connection: ``host``, ``port``, ``login``/``password`` (SMTP AUTH when a login is
set) and extra ``ssl`` (implicit TLS, default false), ``starttls`` (true: required,
false: never, absent: used when the server offers it), ``timeout`` (seconds, default
30), ``from_email`` (the default sender). Airflow's ``disable_ssl``/``disable_tls``
are read too. The message (attachments included) is built off the event loop, and so
is the TLS context (it reads the CA certificates from disk).
"""

from __future__ import annotations

import mimetypes
import os
import re
import ssl
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

import aiosmtplib

from airloop.connections import Connection, InvalidConnection
from airloop.exceptions import AirloopError
from airloop.hooks.base import BaseHook
from airloop.runtime import run_sync

#: Connection extra keys the hook reads.
SMTP_EXTRA = frozenset(
    {"ssl", "starttls", "disable_ssl", "disable_tls", "timeout", "from_email", "validate_certs"}
)


def address_list(where: str, value: str | Iterable[str] | None) -> list[str]:
    """Airflow's ``get_email_address_list``: a list, or a string split on ``,`` and ``;``."""
    if value is None:
        return []
    if isinstance(value, str):
        return [part.strip() for part in re.split(r"[,;]", value) if part.strip()]
    found = []
    for item in value:
        if not isinstance(item, str):
            raise AirloopError(f"{where}: email addresses must be strings, got {item!r}")
        found.extend(address_list(where, item))
    return found


def _flag(conn: Connection, key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
        return value.lower() in ("true", "1", "yes")
    raise InvalidConnection(
        f"connection {conn.conn_id!r}: extra {key!r} must be true or false, got {value!r}"
    )


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    login: str | None
    password: str | None
    use_tls: bool
    start_tls: bool | None
    validate_certs: bool
    timeout: float
    from_email: str | None

    @classmethod
    def from_connection(cls, conn: Connection) -> SmtpConfig:
        extra = conn.extra_dejson
        unknown = sorted(set(extra) - SMTP_EXTRA)
        if unknown:
            raise InvalidConnection(
                f"connection {conn.conn_id!r}: unknown SMTP extra {unknown[0]!r} "
                f"(known: {', '.join(sorted(SMTP_EXTRA))})"
            )
        use_tls = False
        if "ssl" in extra:
            use_tls = _flag(conn, "ssl", extra["ssl"])
        elif "disable_ssl" in extra:
            use_tls = not _flag(conn, "disable_ssl", extra["disable_ssl"])
        start_tls: bool | None = None
        if "starttls" in extra:
            start_tls = _flag(conn, "starttls", extra["starttls"])
        elif "disable_tls" in extra:
            start_tls = not _flag(conn, "disable_tls", extra["disable_tls"])
        if use_tls and start_tls:
            raise InvalidConnection(
                f"connection {conn.conn_id!r}: ssl and starttls cannot both be true"
            )
        if use_tls:
            start_tls = False
        try:
            timeout = float(extra.get("timeout", 30))
        except (TypeError, ValueError):
            raise InvalidConnection(
                f"connection {conn.conn_id!r}: extra 'timeout' must be a number of seconds"
            ) from None
        if not conn.host:
            raise InvalidConnection(f"connection {conn.conn_id!r}: an SMTP connection needs a host")
        return cls(
            host=conn.host,
            port=conn.port or (465 if use_tls else 25),
            login=conn.login,
            password=conn.password,
            use_tls=use_tls,
            start_tls=start_tls,
            validate_certs=_flag(conn, "validate_certs", extra.get("validate_certs", True)),
            timeout=timeout,
            from_email=extra.get("from_email"),
        )


def build_message(
    *,
    sender: str,
    to: Sequence[str],
    subject: str,
    html_content: str,
    cc: Sequence[str] = (),
    files: Sequence[str] = (),
    mime_charset: str = "utf-8",
    custom_headers: Mapping[str, Any] | None = None,
) -> EmailMessage:
    """The MIME message (blocking: reads the attachments). Bcc is never a header."""
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = sender
    message["To"] = ", ".join(to)
    if cc:
        message["Cc"] = ", ".join(cc)
    message["Date"] = formatdate(localtime=True)
    message["Message-ID"] = make_msgid()
    for name, value in (custom_headers or {}).items():
        message[name] = str(value)
    message.set_content(html_content, subtype="html", charset=mime_charset)
    for path in files:
        with open(path, "rb") as handle:
            data = handle.read()
        kind, _ = mimetypes.guess_type(path)
        maintype, subtype = (kind or "application/octet-stream").split("/", 1)
        message.add_attachment(
            data, maintype=maintype, subtype=subtype, filename=os.path.basename(path)
        )
    return message


class SmtpHook(BaseHook):
    """Airflow's ``SmtpHook``: ``await SmtpHook("smtp_default").send_email_smtp(...)``."""

    conn_name_attr = "smtp_conn_id"
    default_conn_name = "smtp_default"
    conn_type = "smtp"
    hook_name = "SMTP"

    def __init__(self, smtp_conn_id: str = default_conn_name) -> None:
        self.smtp_conn_id = smtp_conn_id

    async def get_config(self) -> SmtpConfig:
        return SmtpConfig.from_connection(await self.aget_connection(self.smtp_conn_id))

    async def send_email_smtp(
        self,
        *,
        to: str | Iterable[str],
        subject: str,
        html_content: str,
        from_email: str | None = None,
        files: Sequence[str] | None = None,
        cc: str | Iterable[str] | None = None,
        bcc: str | Iterable[str] | None = None,
        mime_subtype: str = "mixed",
        mime_charset: str = "utf-8",
        custom_headers: Mapping[str, Any] | None = None,
    ) -> None:
        where = f"email through {self.smtp_conn_id!r}"
        config = await self.get_config()
        sender = from_email or config.from_email or config.login
        if not sender:
            raise AirloopError(
                f"{where}: no sender: give from_email, or set from_email in the "
                "connection's extra (or its login)"
            )
        to_list = address_list(where, to)
        cc_list = address_list(where, cc)
        bcc_list = address_list(where, bcc)
        if not to_list:
            raise AirloopError(f"{where}: no recipient in 'to'")
        if mime_subtype != "mixed":
            raise AirloopError(
                f"{where}: mime_subtype {mime_subtype!r} is not supported (only 'mixed')"
            )
        for path in files or ():
            if not isinstance(path, str):
                raise AirloopError(f"{where}: files must be paths (strings), got {path!r}")

        def build() -> EmailMessage:
            try:
                return build_message(
                    sender=sender,
                    to=to_list,
                    subject=subject,
                    html_content=html_content,
                    cc=cc_list,
                    files=list(files or ()),
                    mime_charset=mime_charset,
                    custom_headers=custom_headers,
                )
            except OSError as exc:
                raise AirloopError(
                    f"{where}: cannot attach {exc.filename!r}: {exc.strerror}"
                ) from None

        message = await run_sync(build)
        tls_context = None
        if config.use_tls or config.start_tls is not False:
            tls_context = await run_sync(_tls_context, config.validate_certs)
        try:
            await aiosmtplib.send(
                message,
                sender=sender,
                recipients=to_list + cc_list + bcc_list,
                hostname=config.host,
                port=config.port,
                username=config.login,
                password=config.password if config.login else None,
                use_tls=config.use_tls,
                start_tls=config.start_tls,
                validate_certs=config.validate_certs,
                tls_context=tls_context,
                timeout=config.timeout,
            )
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise AirloopError(
                f"{where} ({config.host}:{config.port}) failed: {type(exc).__name__}: {exc}"
            ) from exc


def _tls_context(validate: bool) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if not validate:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context
