"""``HttpHook``: HTTP calls on aiohttp, one shared session (and bounded pool) per connection.

The connection gives the base URL (``host`` may be a whole URL; else the scheme, host
and port), basic auth (``login``/``password``) and headers (the ``extra``), as in
Airflow's HttpHook. Within an engine, every task calling one connection id shares one
``aiohttp.ClientSession`` (a pool of at most ``POOL_LIMIT`` connections), kept in the
engine's resources and closed when the engine stops; outside an engine, or on a task's
own event loop (the thread executor), each call opens and closes a session of its own.

Retries (ADR 0034): 429, 5xx, timeouts and dropped connections are retried with
exponential backoff and jitter for idempotent methods only (GET, HEAD, OPTIONS, PUT,
DELETE), honouring ``Retry-After``. A connection that could not be opened is retried
for every method (nothing was sent). POST and PATCH are otherwise never sent twice.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import inspect
import json as jsonlib
import logging
import random
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import urlsplit

import aiohttp

from airloop.authoring.airflow_args import Unsupported
from airloop.connections import Connection, InvalidConnection
from airloop.exceptions import AirloopError, DagDefinitionError
from airloop.hooks.base import BaseHook
from airloop.runtime import BlockingOnLoopError, current_resources, run_sync

log = logging.getLogger("airloop.task.http")

#: Methods a retry may send again (RFC 9110's idempotent methods, minus TRACE).
#: Jitter for retry backoff: one generator (seeding one per request costs a urandom call).
_JITTER = random.Random()

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
METHODS = IDEMPOTENT_METHODS | {"POST", "PATCH"}
#: Connections per shared session (one session per connection id and engine).
POOL_LIMIT = 100
_ASYNC_CODE = inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR | inspect.CO_ITERABLE_COROUTINE
#: How much of an error answer's body an HttpError message shows.
BODY_SNIPPET = 200

#: Connection extra keys that configure requests rather than being sent as headers.
_EXTRA_OPTIONS = frozenset({"timeout", "verify", "allow_redirects", "max_redirects"})
#: Airflow's request options airloop does not implement (an error, never ignored).
_UNSUPPORTED_OPTIONS = {
    "proxies": "proxies are not supported yet",
    "proxy": "proxies are not supported yet",
    "cert": "client certificates are not supported yet",
    "stream": "responses are always read whole",
    "trust_env": "not supported",
}
#: extra_options keys the hook understands (Airflow's names).
EXTRA_OPTION_NAMES = _EXTRA_OPTIONS | {"check_response"}


# -- shared by HttpOperator and HttpSensor -------------------------------------------


def _none(value: Any) -> bool:
    return value is None


#: HttpOperator arguments of Airflow's that airloop does not implement yet.
HTTP_ARGS: dict[str, Unsupported] = {
    "auth_type": Unsupported(
        "auth_type (basic auth from the connection's login is used)", _none, "None"
    ),
    "tcp_keep_alive": Unsupported("tcp_keep_alive", lambda v: v is True, "True"),
    "tcp_keep_alive_idle": Unsupported("tcp_keep_alive_idle", _none, "None"),
    "tcp_keep_alive_count": Unsupported("tcp_keep_alive_count", _none, "None"),
    "tcp_keep_alive_interval": Unsupported("tcp_keep_alive_interval", _none, "None"),
    "deferrable": Unsupported("deferrable operators", lambda v: v is False, "False"),
    "retry_args": Unsupported(
        "retry_args (the hook retries idempotent calls itself)", _none, "None"
    ),
}

#: request_kwargs keys passed on to the hook.
REQUEST_KWARGS = frozenset({"json", "params"})


async def call_with_context(
    fn: Callable[..., Any], args: list[Any], context: Mapping[str, Any]
) -> Any:
    """Airflow's ``determine_kwargs``: ``fn(*args, **the context keys it names)``;
    all of the context when it takes ``**kwargs``. Sync callables run off the loop."""
    params = inspect.signature(fn).parameters.values()
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)][
        len(args) :
    ]
    if any(p.kind is p.VAR_KEYWORD for p in params):
        kwargs = {k: context[k] for k in context}
    else:
        names = {p.name for p in positional} | {p.name for p in params if p.kind is p.KEYWORD_ONLY}
        kwargs = {k: context[k] for k in names if k in context}
    if inspect.iscoroutinefunction(fn):
        return await fn(*args, **kwargs)
    return await run_sync(lambda: fn(*args, **kwargs))


class HttpError(AirloopError):
    """An HTTP answer with an error status (or a failed request): says what and why."""

    def __init__(
        self, method: str, url: str, status: int | None, reason: str, body: str = ""
    ) -> None:
        self.method = method
        self.url = url
        self.status = status
        self.reason = reason
        self.body = body
        snippet = body[:BODY_SNIPPET].strip()
        if len(body) > BODY_SNIPPET:
            snippet += "..."
        what = f"HTTP {status} {reason}".rstrip() if status is not None else reason
        message = f"{method} {url} failed: {what}"
        if snippet:
            message += f": {snippet}"
        super().__init__(message)


@dataclass(frozen=True)
class HttpResponse:
    """A whole HTTP answer, read before the connection went back to the pool.

    The attribute names of ``requests.Response`` (what Airflow's ``response_check``
    and ``response_filter`` receive): ``status_code``, ``reason``, ``headers``,
    ``content``, ``text``, ``json()``, ``ok``, ``url``, ``raise_for_status()``.
    """

    method: str
    url: str
    status_code: int
    reason: str
    headers: Mapping[str, str]
    content: bytes
    encoding: str | None = None
    #: The URL as error messages show it (without a secret path).
    shown_url: str | None = field(default=None, repr=False)

    @property
    def status(self) -> int:
        return self.status_code

    @property
    def text(self) -> str:
        return self.content.decode(self.encoding or "utf-8", errors="replace")

    def json(self) -> Any:
        return jsonlib.loads(self.text)

    @property
    def ok(self) -> bool:
        return self.status_code < 400

    def raise_for_status(self) -> None:
        if not self.ok:
            shown = self.url if self.shown_url is None else self.shown_url
            raise HttpError(self.method, shown, self.status_code, self.reason, self.text)

    def __repr__(self) -> str:
        shown = self.url if self.shown_url is None else self.shown_url
        return f"<HttpResponse [{self.status_code}] {self.method} {shown}>"


class HttpSessions:
    """The shared sessions of one engine, by connection id (kept in its resources)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.sessions: dict[str, aiohttp.ClientSession] = {}

    @classmethod
    async def create(cls, settings: Any) -> HttpSessions:
        return cls(asyncio.get_running_loop())

    @classmethod
    async def current(cls) -> HttpSessions | None:
        """The running engine's registry, or None (no engine, or not on its loop)."""
        res = current_resources.get()
        if res is None or getattr(res, "loop", None) is not asyncio.get_running_loop():
            return None
        try:
            registry: HttpSessions = await res.get("http", cls.create)
        except RuntimeError:  # the engine is closing: a call of its own, then
            return None
        return registry

    def session(self, conn_id: str) -> aiohttp.ClientSession:
        session = self.sessions.get(conn_id)
        if session is None or session.closed:
            session = new_session()
            self.sessions[conn_id] = session
        return session

    async def aclose(self) -> None:
        sessions = list(self.sessions.values())
        self.sessions.clear()
        for session in sessions:
            await session.close()


def new_session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=POOL_LIMIT),
        # Never raise on status here: the hook decides (check_response, retries).
        raise_for_status=False,
    )


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds to wait: delta-seconds or an HTTP date (None if absent)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def check_extra_options(where: str, options: Mapping[str, Any]) -> None:
    """Reject extra_options keys the hook would otherwise ignore (one clear line)."""
    for key in options:
        if key in _UNSUPPORTED_OPTIONS:
            raise AirloopError(
                f"{where}: extra_options {key!r} is not supported ({_UNSUPPORTED_OPTIONS[key]})"
            )
        if key not in EXTRA_OPTION_NAMES:
            raise AirloopError(
                f"{where}: unknown extra_options key {key!r} "
                f"(known: {', '.join(sorted(EXTRA_OPTION_NAMES))})"
            )


def option_values(where: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """The request options with their values checked and converted (text from a
    connection's extra included: ``"30"``, ``"false"``)."""
    values: dict[str, Any] = {}
    for key, value in options.items():
        if key == "timeout":
            try:
                seconds = float(value)
            except (TypeError, ValueError):
                seconds = -1.0
            if isinstance(value, bool) or seconds <= 0:
                raise AirloopError(
                    f"{where}: timeout must be a positive number of seconds, got {value!r}"
                )
            values[key] = seconds
        elif key == "max_redirects":
            if isinstance(value, bool) or not str(value).isdigit():
                raise AirloopError(f"{where}: max_redirects must be an integer >= 0, got {value!r}")
            values[key] = int(value)
        elif isinstance(value, bool):
            values[key] = value
        elif isinstance(value, str) and value.lower() in ("true", "false"):
            values[key] = value.lower() == "true"
        else:
            raise AirloopError(f"{where}: {key} must be true or false, got {value!r}")
    return values


class HttpHook(BaseHook):
    """Airflow's ``HttpHook`` on aiohttp: ``await HttpHook(method="GET").run("api/items")``.

    ``retry_limit`` is how many times a retryable failure is tried again (0: never);
    waits grow from ``retry_delay`` (doubling, with jitter) up to ``max_retry_delay``.
    A ``Retry-After`` longer than ``max_retry_delay`` fails the call instead of waiting.
    ``secret_path=True`` keeps the URL's path out of errors and logs (a webhook token).
    """

    conn_name_attr = "http_conn_id"
    default_conn_name = "http_default"
    conn_type = "http"
    hook_name = "HTTP"

    retryable_statuses: ClassVar[frozenset[int]] = frozenset({429, 500, 502, 503, 504})

    def __init__(
        self,
        method: str = "POST",
        http_conn_id: str | None = default_conn_name,
        *,
        retry_limit: int = 3,
        retry_delay: float = 1.0,
        max_retry_delay: float = 60.0,
        secret_path: bool = False,
    ) -> None:
        upper = str(method).upper()
        if upper not in METHODS:
            raise AirloopError(
                f"HttpHook: unknown method {method!r} (choose from {', '.join(sorted(METHODS))})"
            )
        if not isinstance(retry_limit, int) or isinstance(retry_limit, bool) or retry_limit < 0:
            raise AirloopError(
                f"HttpHook: retry_limit must be an integer >= 0, got {retry_limit!r}"
            )
        if retry_delay < 0 or max_retry_delay < 0:
            raise AirloopError("HttpHook: retry_delay and max_retry_delay must be >= 0")
        self.method = upper
        self.http_conn_id = http_conn_id
        self.retry_limit = retry_limit
        self.retry_delay = float(retry_delay)
        self.max_retry_delay = float(max_retry_delay)
        self.base_url = ""
        #: Tries sent by this hook (each retry counts): for logs and tests.
        self.attempts = 0
        #: The URL's path is a secret (a Slack webhook's token): never in messages.
        self.secret_path = secret_path

    def shown(self, url: str) -> str:
        """The URL as messages and logs show it."""
        if not self.secret_path:
            return url
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.netloc}/***"

    # -- the connection -------------------------------------------------------------

    async def get_conn_config(self) -> tuple[str, dict[str, str], str | None, dict[str, Any]]:
        """(base URL, headers, auth, request options) from the connection (None: no
        connection, every endpoint is a whole URL)."""
        if self.http_conn_id is None:
            return "", {}, None, {}
        conn = await self.aget_connection(self.http_conn_id)
        base_url = base_url_of(conn)
        self.base_url = base_url
        headers, options = split_extra(conn)
        auth = None
        if conn.login:
            pair = f"{conn.login}:{conn.password or ''}".encode()
            auth = "Basic " + base64.b64encode(pair).decode("ascii")
        return base_url, headers, auth, options

    def url_from_endpoint(self, endpoint: str | None) -> str:
        """Airflow's join: base URL and endpoint with exactly one ``/`` between them."""
        return join_url(self.base_url, endpoint)

    # -- calls ----------------------------------------------------------------------

    def run(
        self,
        endpoint: str | None = None,
        data: Mapping[str, Any] | str | bytes | None = None,
        headers: Mapping[str, str] | None = None,
        extra_options: Mapping[str, Any] | None = None,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
    ) -> Any:
        """``arun`` the way the caller can use it: in async code, the coroutine to
        await (``await hook.run(...)``); in sync code off the event loop (a sync task in
        a worker thread or process), the response, as Airflow's sync ``run``. Sync code
        on the loop's thread gets an error instead of blocking every task."""
        call = self.arun(endpoint, data, headers, extra_options, json=json, params=params)
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(call)
        caller = sys._getframe(1)
        if caller.f_code.co_flags & _ASYNC_CODE:
            return call
        call.close()
        raise BlockingOnLoopError(
            f"HttpHook.run() was called from sync code ({caller.f_code.co_name} at "
            f"{caller.f_code.co_filename}:{caller.f_lineno}) on the event loop's thread: "
            "'await hook.run(...)' from async code, or make the task a sync task"
        )

    async def arun(
        self,
        endpoint: str | None = None,
        data: Mapping[str, Any] | str | bytes | None = None,
        headers: Mapping[str, str] | None = None,
        extra_options: Mapping[str, Any] | None = None,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
    ) -> HttpResponse:
        """Send one request and read the whole answer.

        ``data`` is the query string for GET and HEAD (as Airflow), the body otherwise
        (a dict is form-encoded); ``json`` is a JSON body. ``extra_options``:
        ``check_response`` (default True: an error status raises HttpError),
        ``timeout`` (seconds), ``verify``, ``allow_redirects``, ``max_redirects``.
        """
        where = f"HttpHook({self.http_conn_id!r})"
        options = dict(extra_options or {})
        check_extra_options(where, options)
        options = option_values(where, options)
        base_url, conn_headers, auth, conn_options = await self.get_conn_config()
        merged = option_values(where, {**conn_options, **options})
        check_response = bool(merged.pop("check_response", True))
        url = join_url(base_url, endpoint)
        if "://" not in url:
            raise AirloopError(
                f"{where}: {self.shown(url)!r} is not a whole URL (http://... or https://...)"
            )
        request: dict[str, Any] = {"headers": {**conn_headers, **dict(headers or {})}}
        if auth is not None and not any(k.lower() == "authorization" for k in request["headers"]):
            request["headers"]["Authorization"] = auth
        if data is not None and json is not None:
            raise AirloopError(f"{where}: give data or json, not both")
        query = dict(params or {})
        if self.method in ("GET", "HEAD"):
            if isinstance(data, Mapping):
                query.update(data)
            elif data is not None:
                url += ("&" if "?" in url else "?") + (
                    data.decode() if isinstance(data, bytes) else str(data)
                )
        elif data is not None:
            request["data"] = dict(data) if isinstance(data, Mapping) else data
        if json is not None:
            request["json"] = json
        if query:
            request["params"] = {k: str(v) for k, v in query.items()}
        if "timeout" in merged:
            request["timeout"] = aiohttp.ClientTimeout(total=merged["timeout"])
        if merged.get("verify") is False:
            request["ssl"] = False
        if "allow_redirects" in merged:
            request["allow_redirects"] = merged["allow_redirects"]
        if "max_redirects" in merged:
            request["max_redirects"] = merged["max_redirects"]
        response = await self._send(url, request)
        if check_response:
            response.raise_for_status()
        return response

    async def _send(self, url: str, request: dict[str, Any]) -> HttpResponse:
        registry = await HttpSessions.current()
        if registry is not None:
            key = self.http_conn_id if self.http_conn_id is not None else ""
            return await self._send_with(registry.session(key), url, request)
        async with new_session() as session:
            return await self._send_with(session, url, request)

    async def _send_with(
        self, session: aiohttp.ClientSession, url: str, request: dict[str, Any]
    ) -> HttpResponse:
        idempotent = self.method in IDEMPOTENT_METHODS
        shown = self.shown(url)
        rng = _JITTER
        attempt = 0
        while True:
            attempt += 1
            self.attempts += 1
            wait: float | None = None
            try:
                async with session.request(self.method, url, **request) as answer:
                    body = await answer.read()
                    response = HttpResponse(
                        method=self.method,
                        url=str(answer.url),
                        shown_url=self.shown(str(answer.url)),
                        status_code=answer.status,
                        reason=answer.reason or "",
                        headers=answer.headers.copy(),  # case-insensitive
                        content=body,
                        encoding=answer.get_encoding() if body else None,
                    )
            except aiohttp.ClientConnectorError as exc:
                # The connection was never opened: nothing was sent, any method may retry.
                failure: BaseException = exc
                cause = f"cannot connect ({exc.os_error})"
                retryable = True
            except (aiohttp.ClientError, TimeoutError) as exc:
                failure = exc
                cause = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                retryable = idempotent
            else:
                if response.status_code not in self.retryable_statuses or not idempotent:
                    return response
                failure = HttpError(
                    self.method, shown, response.status_code, response.reason, response.text
                )
                cause = f"HTTP {response.status_code}"
                retryable = True
                wait = retry_after_seconds(response.headers.get("Retry-After"))
                if wait is not None and wait > self.max_retry_delay:
                    if attempt > self.retry_limit:
                        return response
                    raise HttpError(
                        self.method,
                        shown,
                        response.status_code,
                        f"{response.reason} (Retry-After {wait:g}s is longer than "
                        f"max_retry_delay {self.max_retry_delay:g}s)",
                        response.text,
                    )
            if not retryable or attempt > self.retry_limit:
                if isinstance(failure, HttpError):
                    return response  # the caller's check_response decides
                what = f"{cause} after {attempt} tr{'y' if attempt == 1 else 'ies'}"
                if not retryable:
                    what += f" ({self.method} is not retried: it may have taken effect)"
                raise HttpError(self.method, shown, None, what) from failure
            if wait is None:
                ceiling = min(self.max_retry_delay, self.retry_delay * 2.0 ** min(attempt - 1, 30))
                wait = ceiling / 2 + rng.uniform(0, ceiling / 2)
            log.info(
                "%s %s attempt %d/%d failed (%s); retrying in %.2fs",
                self.method,
                shown,
                attempt,
                self.retry_limit + 1,
                cause,
                wait,
            )
            await asyncio.sleep(wait)


def base_url_of(conn: Connection) -> str:
    """The connection's base URL, as Airflow's HttpHook builds it.

    ``host`` holding ``://`` is the whole base URL. Otherwise the scheme is ``schema``
    when it is ``http``/``https`` (Airflow's use of the field), else the connection
    type when it is ``https`` (the URI form ``https://...``), else ``http``; a
    ``schema`` that is not a scheme is a path prefix (``http://host/v1`` -> ``/v1``).
    """
    host = conn.host or ""
    if "://" in host:
        base = host
        if conn.port is not None and host.count(":") == 1:
            base = f"{host.rstrip('/')}:{conn.port}"
        return base
    if not host:
        raise InvalidConnection(f"connection {conn.conn_id!r}: an HTTP connection needs a host")
    schema = (conn.schema or "").strip("/")
    prefix = ""
    if schema.lower() in ("http", "https"):
        scheme = schema.lower()
    else:
        scheme = "https" if (conn.conn_type or "").lower() == "https" else "http"
        prefix = f"/{schema}" if schema else ""
    port = f":{conn.port}" if conn.port is not None else ""
    return f"{scheme}://{host}{port}{prefix}"


def split_extra(conn: Connection) -> tuple[dict[str, str], dict[str, Any]]:
    """(headers, request options) from the connection's extra: Airflow sends the
    extra's keys as headers; the request options among them configure the call."""
    headers: dict[str, str] = {}
    options: dict[str, Any] = {}
    for key, value in conn.extra_dejson.items():
        if key in _UNSUPPORTED_OPTIONS:
            raise InvalidConnection(
                f"connection {conn.conn_id!r}: extra {key!r} is not supported "
                f"({_UNSUPPORTED_OPTIONS[key]})"
            )
        if key in _EXTRA_OPTIONS:
            options[key] = value
        elif key == "headers" and isinstance(value, Mapping):
            headers.update({str(k): str(v) for k, v in value.items()})
        elif isinstance(value, (str, int, float)) and not isinstance(value, bool):
            headers[key] = str(value)
        else:
            raise InvalidConnection(
                f"connection {conn.conn_id!r}: extra {key!r} is sent as a header and must "
                f"be a string, got {type(value).__name__}"
            )
    return headers, options


def join_url(base_url: str, endpoint: str | None) -> str:
    if endpoint and "://" in endpoint:
        return endpoint  # a whole URL (a pagination 'next' link)
    if base_url and endpoint and not base_url.endswith("/") and not endpoint.startswith("/"):
        return f"{base_url}/{endpoint}"
    if base_url.endswith("/") and endpoint and endpoint.startswith("/"):
        return base_url + endpoint[1:]
    return base_url + (endpoint or "")


def check_request_arguments(
    where: str,
    method: str,
    http_conn_id: str,
    request_kwargs: Mapping[str, Any] | None,
    extra_options: Mapping[str, Any] | None,
) -> None:
    """An HTTP operator's or sensor's request arguments, checked when the DAG is
    defined: a bad one is a DagDefinitionError naming ``where``."""
    unknown = sorted(set(request_kwargs or {}) - REQUEST_KWARGS)
    if unknown:
        raise DagDefinitionError(
            f"{where}: request_kwargs {unknown[0]!r} is not supported "
            f"(supported: {', '.join(sorted(REQUEST_KWARGS))})"
        )
    try:
        check_extra_options(where, extra_options or {})
        option_values(where, extra_options or {})
        HttpHook(method, http_conn_id)  # checks the method now rather than at run time
    except Exception as exc:  # noqa: BLE001 - re-raised as a DAG definition error
        raise DagDefinitionError(str(exc).replace("HttpHook", where)) from None
