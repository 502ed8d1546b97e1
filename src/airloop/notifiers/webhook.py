"""Webhook notifiers: a Slack incoming webhook, and a generic JSON POST."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from airloop.authoring.notifier import BaseNotifier
from airloop.exceptions import DagDefinitionError
from airloop.hooks.http import HttpHook, base_url_of, join_url

#: Slack's address for incoming webhooks (a connection's password is the rest of it).
SLACK_WEBHOOK_BASE = "https://hooks.slack.com/services"
#: Used when no text is given: works for task and DAG callbacks alike.
DEFAULT_TEXT = (
    "DAG {{ dag.dag_id }}{% if ti is defined %} task {{ ti.task_id }}{% endif %}"
    " run {{ run_id }}: {{ reason }}"
)


class SlackWebhookNotifier(BaseNotifier):
    """Post to a Slack incoming webhook (Airflow's Slack provider's notifier).

    The webhook is ``webhook_url``, or the connection ``slack_webhook_conn_id``
    (default ``slack_default``): its password is the whole webhook URL, or the token
    after ``https://hooks.slack.com/services/`` (after the connection's base URL when
    it has a host).
    ``text``, ``blocks`` and ``attachments`` are templates.
    """

    template_fields: ClassVar[tuple[str, ...]] = (
        "slack_webhook_conn_id",
        "webhook_url",
        "text",
        "blocks",
        "attachments",
        "unfurl_links",
        "unfurl_media",
    )

    def __init__(
        self,
        *,
        slack_webhook_conn_id: str | None = None,
        webhook_url: str | None = None,
        text: str = DEFAULT_TEXT,
        blocks: list[Any] | None = None,
        attachments: list[Any] | None = None,
        unfurl_links: bool | None = None,
        unfurl_media: bool | None = None,
        timeout: float | None = None,
    ) -> None:
        if slack_webhook_conn_id is not None and webhook_url is not None:
            raise DagDefinitionError(
                "SlackWebhookNotifier: give slack_webhook_conn_id or webhook_url, not both"
            )
        self.slack_webhook_conn_id = (
            "slack_default"
            if slack_webhook_conn_id is None and webhook_url is None
            else slack_webhook_conn_id
        )
        self.webhook_url = webhook_url
        self.text = text
        self.blocks = blocks
        self.attachments = attachments
        self.unfurl_links = unfurl_links
        self.unfurl_media = unfurl_media
        self.timeout = timeout

    async def url(self) -> str:
        if self.webhook_url is not None:
            return self.webhook_url
        assert self.slack_webhook_conn_id is not None
        conn = await HttpHook.aget_connection(self.slack_webhook_conn_id)
        token = conn.password or ""
        if "://" in token:
            return token
        base = base_url_of(conn) if conn.host else SLACK_WEBHOOK_BASE
        return join_url(base, token.lstrip("/")) if token else base

    def payload(self) -> dict[str, Any]:
        body: dict[str, Any] = {"text": self.text}
        for name in ("blocks", "attachments", "unfurl_links", "unfurl_media"):
            value = getattr(self, name)
            if value is not None:
                body[name] = value
        return body

    async def notify(self, context: Mapping[str, Any]) -> None:
        options = {} if self.timeout is None else {"timeout": self.timeout}
        hook = HttpHook("POST", http_conn_id=None, secret_path=True)
        await hook.arun(await self.url(), json=self.payload(), extra_options=options)


class WebhookNotifier(BaseNotifier):
    """POST a JSON document to a URL or an HTTP connection (airloop's own notifier).

    ``payload`` (templated; default: the event's ``dag_id``, ``task_id``,
    ``run_id``, ``try_number``, ``reason`` and ``exception``) is sent with ``method``
    to ``url``, or to ``endpoint`` on the connection ``http_conn_id`` (its base URL,
    auth and headers, as HttpOperator).
    """

    template_fields: ClassVar[tuple[str, ...]] = ("url", "endpoint", "payload", "headers")

    def __init__(
        self,
        *,
        url: str | None = None,
        http_conn_id: str | None = None,
        endpoint: str | None = None,
        payload: Any = None,
        headers: Mapping[str, str] | None = None,
        method: str = "POST",
        timeout: float | None = None,
    ) -> None:
        if (url is None) == (http_conn_id is None):
            raise DagDefinitionError("WebhookNotifier: give exactly one of url and http_conn_id")
        if url is not None and endpoint is not None:
            raise DagDefinitionError("WebhookNotifier: endpoint goes with http_conn_id, not url")
        if method.upper() not in ("POST", "PUT", "PATCH"):
            raise DagDefinitionError(
                f"WebhookNotifier: method must be POST, PUT or PATCH, got {method!r}"
            )
        self.url = url
        self.http_conn_id = http_conn_id
        self.endpoint = endpoint
        self.payload = payload
        self.headers = dict(headers or {})
        self.method = method.upper()
        self.timeout = timeout

    async def notify(self, context: Mapping[str, Any]) -> None:
        body = default_payload(context) if self.payload is None else self.payload
        options = {} if self.timeout is None else {"timeout": self.timeout}
        hook = HttpHook(self.method, http_conn_id=self.http_conn_id)
        await hook.arun(
            self.url if self.url is not None else self.endpoint,
            json=body,
            headers=self.headers,
            extra_options=options,
        )


def default_payload(context: Mapping[str, Any]) -> dict[str, Any]:
    """What happened, as JSON: the DAG, the run, the task and try (task callbacks), why."""
    dag = context.get("dag")
    ti = context.get("ti")
    exception = context.get("exception")
    return {
        "dag_id": getattr(dag, "dag_id", None),
        "run_id": context.get("run_id"),
        "task_id": getattr(ti, "task_id", None),
        "map_index": getattr(ti, "map_index", None),
        "try_number": getattr(ti, "try_number", None),
        "reason": context.get("reason"),
        "exception": None if exception is None else f"{type(exception).__name__}: {exception}",
    }
