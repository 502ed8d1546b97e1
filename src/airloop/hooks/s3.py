"""``S3Hook``: Amazon S3 through the engine's shared AWS hub (clients, limiter, retries).

The connection ``aws_conn_id`` gives the keys (login: access key id, password: secret
access key; extra ``aws_session_token``) and the place (extra ``region_name``,
``endpoint_url``); without a connection (``aws_conn_id=None``, or the default
``aws_default`` not defined anywhere) the ``[aws]`` settings are used, as Airflow falls
back to boto's default credentials. Every call goes through ``AwsHub.call`` (ADR 0011).

Listings can be shared: ``shared_listing`` coalesces concurrent requests for one
(bucket, prefix) into one ListObjectsV2 walk and lets later callers reuse a listing
started at most ``max_age`` seconds ago, so many S3KeySensors on one prefix make one
listing per poke round (ADR 0036).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from airloop.exceptions import AirloopError
from airloop.hooks.aws import AwsBaseHook, aws_module
from airloop.runtime import resources

log = logging.getLogger("airloop.task.aws")

Listing = list[dict[str, Any]]
ListingKey = tuple[Any, ...]


class S3Error(AirloopError):
    """A bad S3 address or connection for S3Hook."""


def parse_s3_url(s3url: str) -> tuple[str, str]:
    """``s3://bucket/key`` (or ``s3a://``, ``s3n://``) -> (bucket, key)."""
    parts = urlsplit(s3url)
    if parts.scheme not in ("s3", "s3a", "s3n") or not parts.netloc:
        raise S3Error(f"{s3url!r} is not an S3 URL (s3://bucket/key): give bucket_name too")
    return parts.netloc, parts.path.lstrip("/")


class _Pending:
    __slots__ = ("future", "started")

    def __init__(self, future: asyncio.Future[Listing], started: float) -> None:
        self.future = future
        self.started = started


class SharedListings:
    """Listings per (client, bucket, prefix), shared by every task of one engine.

    A caller accepts a listing started at or after ``not_before`` (loop time): the one
    in flight is joined, a recent finished one reused, otherwise a new walk starts.
    A failed walk is not kept. Owned walks are cancelled on close.
    """

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._entries: dict[ListingKey, _Pending] = {}
        #: Listings walked (each may be several ListObjectsV2 pages).
        self.walks = 0

    @classmethod
    async def create(cls, _settings: Any) -> SharedListings:
        return cls()

    async def get(
        self, key: ListingKey, walk: Callable[[], Awaitable[Listing]], not_before: float
    ) -> Listing:
        if asyncio.get_running_loop() is not self._loop:
            return await walk()  # another loop (a sync task's own): nothing to share
        entry = self._entries.get(key)
        if entry is None or entry.started < not_before:
            self.walks += 1
            future = asyncio.ensure_future(walk())
            entry = _Pending(future, self._loop.time())
            self._entries[key] = entry
            future.add_done_callback(functools.partial(self._settled, key, entry))
        # Shielded: a waiter cancelled (its timeout) does not cancel the others' walk.
        return list(await asyncio.shield(entry.future))

    def _settled(self, key: ListingKey, entry: _Pending, future: asyncio.Future[Listing]) -> None:
        failed = future.cancelled() or future.exception() is not None
        if failed and self._entries.get(key) is entry:
            del self._entries[key]

    async def aclose(self) -> None:
        pending = [e.future for e in self._entries.values() if not e.future.done()]
        self._entries.clear()
        for future in pending:
            future.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


class S3Hook(AwsBaseHook):
    """Amazon S3 (Airflow's hook name and ``aws_conn_id``), async methods."""

    hook_name = "Amazon S3"
    client_type = "s3"

    def __init__(self, aws_conn_id: str | None = "aws_default", region_name: str | None = None):
        super().__init__(aws_conn_id=aws_conn_id, region_name=region_name)

    parse_s3_url = staticmethod(parse_s3_url)

    # -- reads ------------------------------------------------------------------------

    async def get_file_metadata(self, prefix: str, bucket_name: str) -> Listing:
        """Every object under ``prefix``: ListObjectsV2 ``Contents`` entries, all pages."""
        found: Listing = []
        token: str | None = None
        while True:
            params: dict[str, Any] = {"Bucket": bucket_name, "Prefix": prefix}
            if token:
                params["ContinuationToken"] = token
            page = await self.call("ListObjectsV2", **params)
            found.extend(page.get("Contents", []))
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return found

    async def list_keys(self, bucket_name: str, prefix: str = "") -> list[str]:
        return [o["Key"] for o in await self.get_file_metadata(prefix, bucket_name)]

    async def shared_listing(
        self, bucket_name: str, prefix: str, *, max_age: float = 5.0
    ) -> Listing:
        """``get_file_metadata``, shared with every task of this engine that asks for
        the same (bucket, prefix) while a listing at most ``max_age`` seconds old exists."""
        listings: SharedListings = await resources().get("s3-listings", SharedListings.create)
        t = await self.target()
        key = (t.region, t.endpoint_url, t.credentials, bucket_name, prefix)
        not_before = asyncio.get_running_loop().time() - max_age
        return await listings.get(
            key, lambda: self.get_file_metadata(prefix, bucket_name), not_before
        )

    async def head_object(self, key: str, bucket_name: str) -> dict[str, Any] | None:
        """The object's metadata, or None when it does not exist."""
        call_error = aws_module().AwsCallError
        try:
            return await self.call("HeadObject", Bucket=bucket_name, Key=key)
        except call_error as exc:
            if exc.status == 404 or exc.code in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    async def check_for_key(self, key: str, bucket_name: str) -> bool:
        return await self.head_object(key, bucket_name) is not None

    async def read_key(self, key: str, bucket_name: str) -> str:
        response = await self.call("GetObject", Bucket=bucket_name, Key=key)
        async with response["Body"] as body:
            data: bytes = await body.read()
        return data.decode()

    # -- writes -----------------------------------------------------------------------

    async def create_bucket(self, bucket_name: str) -> None:
        await self.call("CreateBucket", Bucket=bucket_name)

    async def load_bytes(
        self, bytes_data: bytes, key: str, bucket_name: str, replace: bool = False
    ) -> None:
        if not replace and await self.check_for_key(key, bucket_name):
            raise S3Error(f"s3://{bucket_name}/{key} exists already (replace=True overwrites)")
        await self.call("PutObject", Bucket=bucket_name, Key=key, Body=bytes_data)

    async def load_string(
        self, string_data: str, key: str, bucket_name: str, replace: bool = False
    ) -> None:
        await self.load_bytes(string_data.encode(), key, bucket_name, replace)


__all__ = ["S3Error", "S3Hook", "SharedListings", "parse_s3_url"]
