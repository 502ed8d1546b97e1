"""Notifiers usable as callbacks: email (SMTP), Slack incoming webhook, generic JSON webhook."""
