"""``S3KeySensor``: wait for one or more keys (or wildcard patterns) in S3.

Each poke reads a listing, never a HeadObject per key: the keys' prefix (the part
before the first ``*``, ``?`` or ``[`` with ``wildcard_match``, the key itself
otherwise) is listed through ``S3Hook.shared_listing``, so sensors of one engine
waiting on the same bucket and prefix share one ListObjectsV2 walk per poke round
(ADR 0036). A listing is reused for at most ``min(poke_interval, 5 s)``.
"""

from __future__ import annotations

import fnmatch
import inspect
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

from airloop.authoring.airflow_args import SENSOR_ARGS, Unsupported
from airloop.authoring.context import Context
from airloop.authoring.sensor import BaseSensor
from airloop.exceptions import AirloopError, DagDefinitionError
from airloop.hooks.s3 import S3Hook, parse_s3_url
from airloop.runtime import run_sync

#: The longest a shared listing is reused for (seconds).
LISTING_MAX_AGE = 5.0

_WILDCARD = re.compile(r"[\[*?]")


class S3KeySensor(BaseSensor):
    """Wait until every key in ``bucket_key`` exists (Airflow's sensor and arguments).

    ``bucket_key``: a key or a list of keys, relative to ``bucket_name``, or full
    ``s3://bucket/key`` URLs without it; templated. ``wildcard_match``: the keys are
    Unix shell patterns (fnmatch) matched against the listing of their prefix.
    ``check_fn(files)`` (sync or async; may also take context keys as keyword
    arguments) gets the matched objects' metadata, dicts with ``Key``, ``Size``,
    ``LastModified`` and ``ETag``, and returns whether the sensor is done.
    """

    template_fields: ClassVar[Sequence[str]] = ("bucket_key", "bucket_name")
    unsupported_airflow_args: ClassVar[Mapping[str, Unsupported]] = {
        **SENSOR_ARGS,
        "use_regex": Unsupported("use_regex (use wildcard_match)", lambda v: v is False, "False"),
        "verify": Unsupported(
            "verify (TLS settings come from the [aws] settings)", lambda v: v is None, "None"
        ),
    }

    def __init__(
        self,
        *,
        bucket_key: str | list[str],
        bucket_name: str | None = None,
        wildcard_match: bool = False,
        check_fn: Callable[..., Any] | None = None,
        aws_conn_id: str | None = "aws_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        where = f"sensor {self.task_id!r}"
        keys = [bucket_key] if isinstance(bucket_key, str) else bucket_key
        if not isinstance(keys, list) or not keys or not all(isinstance(k, str) for k in keys):
            raise DagDefinitionError(f"{where}: bucket_key must be a key or a list of keys")
        if check_fn is not None and not callable(check_fn):
            raise DagDefinitionError(f"{where}: check_fn must be callable")
        self.bucket_key = bucket_key
        self.bucket_name = bucket_name
        self.wildcard_match = wildcard_match
        self.check_fn = check_fn
        self.aws_conn_id = aws_conn_id

    def _addresses(self) -> list[tuple[str, str]]:
        keys = [self.bucket_key] if isinstance(self.bucket_key, str) else list(self.bucket_key)
        found = []
        for key in keys:
            if self.bucket_name is None:
                found.append(parse_s3_url(key))
            elif "://" in key:
                raise AirloopError(
                    f"sensor {self.task_id!r}: with bucket_name, bucket_key must be a key "
                    f"relative to the bucket, not a URL ({key!r})"
                )
            else:
                found.append((self.bucket_name, key))
        return found

    async def poke(self, context: Context) -> bool:  # type: ignore[override]  # async poke
        hook = S3Hook(self.aws_conn_id)
        max_age = min(self.poke_interval, LISTING_MAX_AGE)
        files: list[dict[str, Any]] = []
        for bucket, key in self._addresses():
            prefix = _WILDCARD.split(key, maxsplit=1)[0] if self.wildcard_match else key
            listing = await hook.shared_listing(bucket, prefix, max_age=max_age)
            if self.wildcard_match:
                matches = [o for o in listing if fnmatch.fnmatch(o["Key"], key)]
            else:
                matches = [o for o in listing if o["Key"] == key]
            context.log.info("poking for s3://%s/%s: %d found", bucket, key, len(matches))
            if not matches:
                return False
            files.extend(
                {k: o.get(k) for k in ("Key", "Size", "LastModified", "ETag")} for o in matches
            )
        if self.check_fn is None:
            return True
        return bool(await _call_check(self.check_fn, files, context))


async def _call_check(fn: Callable[..., Any], files: list[dict[str, Any]], context: Context) -> Any:
    """``check_fn(files, **context keys it names)``: awaited if async, else in the pool."""
    kwargs: dict[str, Any] = {}
    try:
        parameters = list(inspect.signature(fn).parameters.values())[1:]
    except (TypeError, ValueError):
        parameters = []
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        kwargs = {k: context[k] for k in context}
    else:
        kwargs = {p.name: context[p.name] for p in parameters if p.name in context}
    if inspect.iscoroutinefunction(fn):
        return await fn(files, **kwargs)
    return await run_sync(lambda: fn(files, **kwargs))


__all__ = ["S3KeySensor"]
