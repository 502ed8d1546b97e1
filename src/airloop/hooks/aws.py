"""``AwsBaseHook``: any AWS service through the engine's shared AWS hub (clients,
limiter, retries; ADR 0011), configured by an Airflow-style ``aws_conn_id``.

The connection gives the keys (login: access key id, password: secret access key;
extra ``aws_session_token``) and the place (extra ``region_name``, ``endpoint_url``);
without a connection (``aws_conn_id=None``, or the default ``aws_default`` not defined
anywhere) the ``[aws]`` settings are used, as Airflow falls back to boto's default
credentials. Service hooks (``S3Hook``) build on it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

from airloop.connections import ConnectionNotFound
from airloop.exceptions import AirloopError
from airloop.hooks.base import BaseHook

if TYPE_CHECKING:
    from airloop.providers.aws.hub import AwsCredentials

log = logging.getLogger("airloop.task.aws")

#: Connection extra keys the hook reads; any other key is an error (nothing ignored).
EXTRA_KEYS = frozenset({"region_name", "endpoint_url", "aws_session_token"})


class AwsHookError(AirloopError):
    """A bad AWS connection, or the AWS extra missing."""


def aws_module() -> ModuleType:
    """The AWS hub module, imported on first use: ``import airloop.hooks`` works
    without the ``aws`` extra; using AWS without it is one clear error."""
    try:
        from airloop.providers.aws import hub
    except ImportError as exc:
        raise AwsHookError(
            f"AWS hooks need the AWS extra: pip install 'airloop[aws]' ({exc})"
        ) from None
    return hub


@dataclass(frozen=True, slots=True)
class AwsTarget:
    region: str | None
    endpoint_url: str | None
    credentials: AwsCredentials | None


class AwsBaseHook(BaseHook):
    """Airflow's ``AwsBaseHook``: ``aws_conn_id``, ``region_name``, ``client_type``;
    ``await hook.call(action, **params)`` makes one call of ``client_type``'s API."""

    conn_name_attr = "aws_conn_id"
    default_conn_name = "aws_default"
    conn_type = "aws"
    hook_name = "Amazon Web Services"

    def __init__(
        self,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        client_type: str | None = None,
    ) -> None:
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name
        if client_type is not None:
            self.client_type = client_type
        self._target: AwsTarget | None = None

    client_type: str = ""

    async def target(self) -> AwsTarget:
        """Region, endpoint and keys from the connection (looked up once per hook)."""
        if self._target is not None:
            return self._target
        region, endpoint, credentials = self.region_name, None, None
        conn = None
        if self.aws_conn_id is not None:
            try:
                conn = await self.aget_connection(self.aws_conn_id)
            except ConnectionNotFound:
                if self.aws_conn_id != self.default_conn_name:
                    raise
                log.debug("no connection %r: using the [aws] settings", self.aws_conn_id)
        if conn is not None:
            extra = conn.extra_dejson
            unknown = sorted(set(extra) - EXTRA_KEYS)
            if unknown:
                raise AwsHookError(
                    f"connection {conn.conn_id!r}: extra {', '.join(unknown)} not supported "
                    f"by {type(self).__name__} (it reads {', '.join(sorted(EXTRA_KEYS))})"
                )
            if bool(conn.login) != bool(conn.password):
                raise AwsHookError(
                    f"connection {conn.conn_id!r}: give both login (access key id) and "
                    "password (secret access key), or neither"
                )
            if conn.login and conn.password:
                credentials = aws_module().AwsCredentials(
                    conn.login, conn.password, extra.get("aws_session_token")
                )
            region = region or extra.get("region_name")
            endpoint = extra.get("endpoint_url")
        self._target = AwsTarget(region, endpoint, credentials)
        return self._target

    async def call(self, action: str, **params: Any) -> dict[str, Any]:
        """One API call of ``client_type`` through the engine's hub (limiter, retries)."""
        if not self.client_type:
            raise AwsHookError(f"{type(self).__name__}: give client_type (e.g. 'sqs')")
        hub = await aws_module().AwsHub.current()
        t = await self.target()
        response: dict[str, Any] = await hub.call(
            self.client_type,
            action,
            region=t.region,
            endpoint_url=t.endpoint_url,
            credentials=t.credentials,
            **params,
        )
        return response


__all__ = ["AwsBaseHook", "AwsHookError", "AwsTarget", "aws_module"]
