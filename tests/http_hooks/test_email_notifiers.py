"""EmailOperator and the notifiers against real local servers: aiosmtpd receives the
mails, the aiohttp app plays a Slack incoming webhook and a generic webhook."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from airloop import DAG, DagRunState, task
from airloop.engine.engine import Engine
from airloop.exceptions import AirloopError, DagDefinitionError
from airloop.hooks.smtp import SmtpHook
from airloop.notifiers import SlackWebhookNotifier, SmtpNotifier, WebhookNotifier
from airloop.operators import EmailOperator
from airloop.settings import Settings

from .conftest import LocalHttp, Mailbox


async def test_email_operator_sends_html_with_attachment_cc_and_bcc(
    smtp_server: Mailbox, tmp_path: Path
) -> None:
    report = tmp_path / "report.csv"
    report.write_text("a,b\n1,2\n")
    with DAG("mail") as dag:
        EmailOperator(
            task_id="send",
            conn_id="smtp_test",
            to="alice@example.com; bob@example.com",
            cc=["carol@example.com"],
            bcc="dave@example.com",
            subject="Report for {{ run_id }}",
            html_content="<h1>Hello {{ params.name }}</h1>",
            files=[str(report)],
            params={"name": "team"},
        )
    async with Engine(Settings(home=tmp_path / "home")) as engine:
        result = await engine.run(dag, run_id="r7")
    assert result.state is DagRunState.SUCCESS, result.failed
    [mail] = await smtp_server.wait_for(1)
    assert mail.mail_from == "airloop@example.com"
    assert sorted(mail.rcpt_tos) == [
        "alice@example.com",
        "bob@example.com",
        "carol@example.com",
        "dave@example.com",
    ]
    message = mail.message
    assert message["Subject"] == "Report for r7"
    assert message["To"] == "alice@example.com, bob@example.com"
    assert message["Cc"] == "carol@example.com"
    assert message["Bcc"] is None
    parts = list(message.walk())
    html = next(p for p in parts if p.get_content_type() == "text/html")
    assert "<h1>Hello team</h1>" in html.get_payload(decode=True).decode()
    attachment = next(p for p in parts if p.get_filename() == "report.csv")
    assert attachment.get_payload(decode=True) == b"a,b\n1,2\n"


async def test_email_errors_name_the_problem(smtp_server: Mailbox, tmp_path: Path) -> None:
    hook = SmtpHook("smtp_test")
    with pytest.raises(AirloopError, match=r"cannot attach .*missing\.txt"):
        await hook.send_email_smtp(
            to="a@example.com", subject="s", html_content="x", files=[str(tmp_path / "missing.txt")]
        )
    with pytest.raises(AirloopError, match="no recipient"):
        await hook.send_email_smtp(to="", subject="s", html_content="x")
    assert smtp_server.mails == []


async def test_failure_callback_email_and_slack_webhook_from_a_real_run(
    smtp_server: Mailbox,
    http_server: LocalHttp,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(
        "AIRLOOP_CONN_SLACK_TEST",
        json.dumps(
            {
                "conn_type": "slackwebhook",
                "host": "127.0.0.1",
                "port": http_server.server.port,
                "schema": "services",
                "password": "T000/B000/XXXX",
            }
        ),
    )
    notifiers = [
        SmtpNotifier(
            to="oncall@example.com",
            smtp_conn_id="smtp_test",
            subject="{{ ti.task_id }} failed in {{ dag.dag_id }}",
        ),
        SlackWebhookNotifier(
            slack_webhook_conn_id="slack_test",
            text=":red_circle: {{ ti.task_id }} failed: {{ exception }}",
            blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": "{{ run_id }}"}}],
        ),
    ]
    with DAG("alerting") as dag:

        @task(on_failure_callback=notifiers)
        def breaks() -> None:
            raise ValueError("disk full")

        breaks()

    async with Engine(Settings(home=tmp_path)) as engine:
        result = await engine.run(dag, run_id="r9")
        assert result.state is DagRunState.FAILED
        [mail] = await smtp_server.wait_for(1)
        async with asyncio.timeout(20):
            await http_server.state.arrived.wait()
    assert mail.message["Subject"] == "breaks failed in alerting"
    assert mail.rcpt_tos == ["oncall@example.com"]
    [posted] = http_server.state.posted
    assert posted["path"] == "/services/T000/B000/XXXX"
    assert posted["json"]["text"] == ":red_circle: breaks failed: disk full"
    assert posted["json"]["blocks"][0]["text"]["text"] == "r9"


async def test_webhook_notifier_posts_the_dag_failure(
    http_server: LocalHttp, tmp_path: Path
) -> None:
    with DAG(
        "dag_level",
        on_failure_callback=WebhookNotifier(url=f"{http_server.url}/hooks/airloop"),
    ) as dag:

        @task
        def breaks() -> None:
            raise RuntimeError("nope")

        breaks()

    async with Engine(Settings(home=tmp_path)) as engine:
        result = await engine.run(dag, run_id="r3")
        assert result.state is DagRunState.FAILED
        async with asyncio.timeout(20):
            await http_server.state.arrived.wait()
    [posted] = http_server.state.posted
    body: dict[str, Any] = posted["json"]
    assert body["dag_id"] == "dag_level"
    assert body["run_id"] == "r3"
    assert body["reason"] == "task_failure"
    assert body["task_id"] is None


async def test_a_failed_slack_post_never_shows_the_webhook_token(http_server: LocalHttp) -> None:
    notifier = SlackWebhookNotifier(webhook_url=f"{http_server.url}/nowhere/T1/B1/SECRET")
    with pytest.raises(AirloopError) as raised:
        await notifier.notify({})
    assert "SECRET" not in str(raised.value)
    assert f"POST {http_server.url}/*** failed: HTTP 404 Not Found" in str(raised.value)


def test_notifier_definition_errors() -> None:
    with pytest.raises(DagDefinitionError, match="exactly one of url and http_conn_id"):
        WebhookNotifier()
    with pytest.raises(DagDefinitionError, match="not both"):
        SlackWebhookNotifier(slack_webhook_conn_id="a", webhook_url="http://x")
    with pytest.raises(DagDefinitionError, match="mime_subtype 'alternative'"):
        SmtpNotifier(to="a@example.com", mime_subtype="alternative")
