"""Notifiers usable as callbacks: email (SMTP), Slack incoming webhook, generic JSON webhook."""

# SMTP, Slack and webhooks (issue 12)
from airloop.notifiers.smtp import SmtpNotifier
from airloop.notifiers.webhook import SlackWebhookNotifier, WebhookNotifier

__all__: list[str] = []
# SMTP, Slack and webhooks (issue 12)
__all__ += ["SlackWebhookNotifier", "SmtpNotifier", "WebhookNotifier"]
