"""AWS Secrets Manager as a secrets backend (Airflow's ``SecretsManagerBackend``).

Configure it with the settings ``secrets_backend =
"airloop.providers.aws.secrets_manager.SecretsManagerBackend"`` and
``secrets_backend_kwargs`` (JSON): ``connections_prefix`` (default
``airloop/connections``), ``variables_prefix`` (``airloop/variables``), ``sep`` (``/``),
``region_name`` and ``endpoint_url`` (default: the ``[aws]`` settings). A prefix set to
null turns that kind of lookup off. A connection's secret is its URI or JSON form; a
variable's secret is its value. Calls go through the shared AWS hub (limiter and
retries); a secret that does not exist means "not here", so the next source is asked.
"""

from __future__ import annotations

import asyncio
from typing import Any

from airloop.connections.lookup import current_settings, lookup_loop
from airloop.connections.model import Connection, InvalidConnection
from airloop.providers.aws.hub import AwsCallError, AwsHub
from airloop.runtime import current_resources

_NOT_FOUND = "ResourceNotFoundException"


class SecretsManagerBackend:
    """Connections and variables kept in AWS Secrets Manager."""

    name = "AWS Secrets Manager"

    def __init__(
        self,
        connections_prefix: str | None = "airloop/connections",
        variables_prefix: str | None = "airloop/variables",
        sep: str = "/",
        region_name: str | None = None,
        endpoint_url: str | None = None,
    ) -> None:
        self.connections_prefix = connections_prefix
        self.variables_prefix = variables_prefix
        self.sep = sep
        self.region_name = region_name
        self.endpoint_url = endpoint_url

    def secret_id(self, prefix: str, key: str) -> str:
        return f"{prefix.rstrip(self.sep)}{self.sep}{key}"

    async def get_connection(self, conn_id: str) -> Connection | None:
        if self.connections_prefix is None:
            return None
        secret_id = self.secret_id(self.connections_prefix, conn_id)
        text = await self._secret(secret_id)
        if text is None:
            return None
        try:
            return Connection.parse(conn_id, text)
        except InvalidConnection as exc:
            raise InvalidConnection(f"{self.name} secret {secret_id!r}: {exc}") from None

    async def get_variable(self, key: str) -> str | None:
        if self.variables_prefix is None:
            return None
        return await self._secret(self.secret_id(self.variables_prefix, key))

    async def _secret(self, secret_id: str) -> str | None:
        if current_resources.get() is not None and lookup_loop.get() is asyncio.get_running_loop():
            # Task code on the engine's loop: the engine's shared clients and limiters.
            return await self._fetch(await AwsHub.current(), secret_id)
        # Outside an engine (the CLI, a script) or on another loop (a worker thread's
        # own): a hub for this lookup only (its clients belong to this loop).
        hub = AwsHub(current_settings().aws)
        try:
            return await self._fetch(hub, secret_id)
        finally:
            await hub.aclose()

    async def _fetch(self, hub: AwsHub, secret_id: str) -> str | None:
        try:
            response: dict[str, Any] = await hub.call(
                "secretsmanager",
                "GetSecretValue",
                region=self.region_name,
                endpoint_url=self.endpoint_url,
                SecretId=secret_id,
            )
        except AwsCallError as exc:
            if exc.code == _NOT_FOUND:
                return None
            raise
        text = response.get("SecretString")
        if text is None:
            raise InvalidConnection(
                f"{self.name} secret {secret_id!r} holds binary data; airloop reads SecretString"
            )
        return str(text)
