"""Airflow's connection model and its two text forms (URI and JSON).

A connection is the address of an external system and the credentials to use it:
``conn_id``, ``conn_type``, ``host``, ``schema``, ``login``, ``password``, ``port``
and ``extra`` (a JSON object kept as text, as Airflow keeps it). The URI form is
Airflow's: ``type://login:password@host:port/schema?key=value`` with every part
percent-encoded, ``-`` in the scheme standing for ``_`` in the type, and a
non-flat extra carried whole in the ``__extra__`` query parameter.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from airloop.exceptions import AirloopError

FIELDS = ("conn_type", "description", "host", "schema", "login", "password", "port", "extra")
_TEXT_FIELDS = ("conn_type", "description", "host", "schema", "login", "password")


class InvalidConnection(AirloopError):
    """A connection that cannot be read: a bad URI or JSON form, or a bad field."""


class ConnectionNotFound(AirloopError):
    """No source holds the connection id; the message names the sources looked up."""

    def __init__(self, conn_id: str, looked_in: list[str]) -> None:
        where = ", ".join(looked_in) or "no source"
        super().__init__(f"connection {conn_id!r} not found (looked in: {where})")
        self.conn_id = conn_id
        self.looked_in = looked_in


@dataclass(frozen=True)
class Connection:
    """One connection. ``extra`` is the JSON text; ``extra_dejson`` its parsed object."""

    conn_id: str
    conn_type: str | None = None
    description: str | None = None
    host: str | None = None
    schema: str | None = None
    login: str | None = None
    password: str | None = field(default=None, repr=False)
    port: int | None = None
    extra: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.conn_id or not isinstance(self.conn_id, str):
            raise InvalidConnection("a connection needs a non-empty conn_id")
        for name in _TEXT_FIELDS:
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):  # never print the value
                raise InvalidConnection(
                    f"connection {self.conn_id!r}: {name} must be a string, "
                    f"got {type(value).__name__}"
                )
        if self.port is not None and not isinstance(self.port, int):
            try:
                object.__setattr__(self, "port", int(self.port))
            except (TypeError, ValueError):
                raise InvalidConnection(
                    f"connection {self.conn_id!r}: port must be an integer, got {self.port!r}"
                ) from None
        if isinstance(self.extra, Mapping):
            object.__setattr__(self, "extra", json.dumps(dict(self.extra)))
        if self.extra is not None:
            self._parse_extra()

    def _parse_extra(self) -> dict[str, Any]:
        if not self.extra:
            return {}
        try:
            value = json.loads(self.extra)
        except json.JSONDecodeError as error:
            raise InvalidConnection(
                f"connection {self.conn_id!r}: extra is not JSON ({error.msg} at {error.pos})"
            ) from None
        if not isinstance(value, dict):
            raise InvalidConnection(f"connection {self.conn_id!r}: extra must be a JSON object")
        return value

    @property
    def extra_dejson(self) -> dict[str, Any]:
        """The extra as a dict (empty when there is none)."""
        return self._parse_extra()

    def with_id(self, conn_id: str) -> Connection:
        return replace(self, conn_id=conn_id)

    # -- the URI form ---------------------------------------------------------------

    @classmethod
    def from_uri(cls, conn_id: str, uri: str) -> Connection:
        """Parse Airflow's URI form (``postgres://user:pw@host:5432/db?sslmode=require``)."""
        if "://" not in uri:
            raise InvalidConnection(
                f"connection {conn_id!r}: not a connection URI (expected TYPE://...)"
            )
        scheme, rest = uri.split("://", 1)
        if not scheme:
            raise InvalidConnection(f"connection {conn_id!r}: the URI has no type before ://")
        # Airflow: "type://" and "type:///path" mean an empty host. urlsplit needs a
        # scheme it can parse, so split on a neutral one.
        parts = urlsplit("x://" + rest)
        try:
            port = parts.port
        except ValueError:
            raise InvalidConnection(
                f"connection {conn_id!r}: the URI's port is not a number"
            ) from None
        extra: dict[str, Any] = {}
        for key, value in parse_qsl(parts.query, keep_blank_values=True):
            if key == "__extra__":
                try:
                    loaded = json.loads(value)
                except ValueError:
                    raise InvalidConnection(
                        f"connection {conn_id!r}: __extra__ in the URI is not JSON"
                    ) from None
                if not isinstance(loaded, dict):
                    raise InvalidConnection(
                        f"connection {conn_id!r}: __extra__ in the URI must be a JSON object"
                    )
                extra.update(loaded)
            else:
                extra[key] = value
        path = parts.path[1:] if parts.path.startswith("/") else parts.path
        return cls(
            conn_id=conn_id,
            conn_type=scheme.replace("-", "_"),
            host=unquote(parts.hostname or "") or None if parts.netloc else None,
            schema=unquote(path) or None,
            login=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            port=port,
            extra=json.dumps(extra) if extra else None,
        )

    def get_uri(self) -> str:
        """The URI form, readable back by :meth:`from_uri`."""
        scheme = (self.conn_type or "").replace("_", "-")
        auth = ""
        if self.login is not None or self.password is not None:
            auth = quote(self.login or "", safe="")
            if self.password is not None:
                auth += ":" + quote(self.password, safe="")
            auth += "@"
        host = quote(self.host or "", safe="")
        port = f":{self.port}" if self.port is not None else ""
        schema = "/" + quote(self.schema, safe="") if self.schema else ""
        query = ""
        extra = self.extra_dejson
        if extra:
            flat = all(isinstance(v, str) for v in extra.values())
            query = "?" + (
                urlencode(extra) if flat else urlencode({"__extra__": json.dumps(extra)})
            )
        return f"{scheme}://{auth}{host}{port}{schema}{query}"

    # -- the JSON form --------------------------------------------------------------

    @classmethod
    def from_json(cls, conn_id: str, text: str | Mapping[str, Any]) -> Connection:
        """Parse Airflow's JSON form: an object of the fields (``extra`` an object or text)."""
        if isinstance(text, str):
            try:
                data = json.loads(text)
            except json.JSONDecodeError as error:
                raise InvalidConnection(
                    f"connection {conn_id!r}: not valid JSON ({error.msg} at {error.pos})"
                ) from None
        else:
            data = dict(text)
        if not isinstance(data, dict):
            raise InvalidConnection(f"connection {conn_id!r}: the JSON form must be an object")
        unknown = sorted(set(data) - set(FIELDS) - {"conn_id"})
        if unknown:
            raise InvalidConnection(
                f"connection {conn_id!r}: unknown field(s) {', '.join(unknown)}; "
                f"known: {', '.join(FIELDS)}"
            )
        # An id looked up in the environment may differ in case only (ids are upper-cased there).
        if str(data.get("conn_id", conn_id)).lower() != conn_id.lower():
            raise InvalidConnection(
                f"connection {conn_id!r}: the JSON form's conn_id is {data['conn_id']!r}"
            )
        fields = {k: data.get(k) for k in FIELDS}
        if isinstance(fields["extra"], Mapping):
            fields["extra"] = json.dumps(dict(fields["extra"]))
        return cls(conn_id=conn_id, **fields)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form as a dict, with ``extra`` as an object."""
        data: dict[str, Any] = {"conn_id": self.conn_id}
        for name in FIELDS:
            value = getattr(self, name)
            if name == "extra":
                value = self.extra_dejson or None
            if value is not None:
                data[name] = value
        return data

    def as_json(self) -> str:
        data = self.to_dict()
        data.pop("conn_id")
        return json.dumps(data)

    @classmethod
    def parse(cls, conn_id: str, text: str) -> Connection:
        """Either form: JSON when the text starts with ``{``, the URI form otherwise."""
        stripped = text.strip()
        if stripped.startswith("{"):
            return cls.from_json(conn_id, stripped)
        return cls.from_uri(conn_id, stripped)
