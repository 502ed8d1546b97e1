"""JSON answers parsed by walking what the answer holds, not everything its shape declares.

botocore builds each structure of a JSON answer by going through *every* member the
shape declares and looking each one up in the decoded body. A DescribeJobs answer
about 100 jobs holds a dozen fields per job, but AWS Batch's ``JobDetail`` and
``ContainerDetail`` declare about 35 members each: most of the parse is looking up
absent keys. The batched poller asks DescribeJobs about every watched job every
interval (10 calls per 1,000 watched jobs, every 5 s in issue 10's benchmark), so this walk was
the largest part of airloop's CPU beyond the submits themselves (issue 10).

The parsers here go through the keys the body holds instead, each mapped to its
member once per shape. The result is the same dict: a member is present when its
key is in the body and not null, and every value is parsed by its member's shape
as before (lists, maps, timestamps, blobs, nested structures). Document types and
tagged unions keep botocore's own handling.
"""

from __future__ import annotations

import weakref
from typing import Any

from aiobotocore.parsers import AioJSONParser, AioResponseParserFactory, AioRestJSONParser
from botocore.model import Shape
from botocore.parsers import BaseRestParser
from botocore.utils import is_json_value_header

#: For each structure shape: its members by the key they have in a JSON body, each
#: with whether its value is taken as it is (see ``_PresentKeys._members``). A key
#: normally names one member; a tuple keeps botocore's result if a model ever maps
#: one key to several.
_Members = dict[str, tuple[tuple[str, Shape, bool], ...]]


class _PresentKeys:
    """``_handle_structure`` over the body's keys (mixed into botocore's JSON parsers)."""

    _by_shape: weakref.WeakKeyDictionary[Shape, _Members]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._by_shape = weakref.WeakKeyDictionary()

    @classmethod
    def _members(cls, shape: Shape) -> _Members:
        found = cls._by_shape.get(shape)
        if found is None:
            grouped: dict[str, list[tuple[str, Shape, bool]]] = {}
            for name, member in shape.members.items():
                key = member.serialization.get("name", name)
                grouped.setdefault(key, []).append((name, member, cls._as_is(member)))
            found = {key: tuple(members) for key, members in grouped.items()}
            cls._by_shape[shape] = found
        return found

    @classmethod
    def _as_is(cls, member: Shape) -> bool:
        """True when botocore's parse would hand this member's JSON value back unchanged:
        no handler for its type (``_default_handle``), or a string that is not a JSON
        value header (``BaseRestParser._handle_string``)."""
        handler = getattr(cls, f"_handle_{member.type_name}", None)
        if handler is None:
            return True
        return (
            member.type_name == "string"
            and handler is BaseRestParser._handle_string
            and not is_json_value_header(member)
        )

    def _handle_structure(self, shape: Shape, value: Any) -> Any:
        if value is None or shape.is_document_type or shape.is_tagged_union:
            return super()._handle_structure(shape, value)  # type: ignore[misc]
        members = self._members(shape)
        parse = self._parse_shape  # type: ignore[attr-defined]
        parsed: dict[str, Any] = {}
        for key, raw in value.items():
            if raw is None:
                continue
            for name, member, as_is in members.get(key, ()):
                parsed[name] = raw if as_is else parse(member, raw)
        return parsed


class LeanRestJSONParser(_PresentKeys, AioRestJSONParser):  # type: ignore[misc]
    """rest-json (Batch)."""


class LeanJSONParser(_PresentKeys, AioJSONParser):  # type: ignore[misc]
    """json (Secrets Manager and the other JSON-RPC services)."""


_LEAN = {"rest-json": LeanRestJSONParser, "json": LeanJSONParser}


class LeanParserFactory(AioResponseParserFactory):  # type: ignore[misc]
    """aiobotocore's parser factory with the two JSON protocols' parsers replaced."""

    def create_parser(self, protocol_name: str) -> Any:
        lean = _LEAN.get(protocol_name)
        if lean is None:
            return super().create_parser(protocol_name)
        return lean(**self._defaults)


def use_lean_parsers(session: Any) -> Any:
    """Make clients created from ``session`` (an AioSession) parse JSON answers leanly."""
    session.register_component("response_parser_factory", LeanParserFactory())
    return session
