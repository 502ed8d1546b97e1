"""Values stored as JSON (XCom, run parameters) must come back as they went in."""

from __future__ import annotations

from typing import Any


def non_string_key(value: Any) -> tuple[Any, str] | None:
    """The first dict key JSON would silently turn into a string, and where it is.

    ``json.dumps({1: "x"})`` gives ``{"1": "x"}``: the value comes back with a different
    key and lookups break downstream. Returns ``(key, path)`` with a path such as
    ``['items'][0]`` (empty at the top level), or None. Call it on a value that
    ``json.dumps`` accepted, so it has no cycles. Tuples are not reported: they come
    back as lists, which index and iterate the same (documented in ADR 0005).
    """
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        item, path = stack.pop()
        if isinstance(item, dict):
            for key, sub in item.items():
                if not isinstance(key, str):
                    return key, path
                if isinstance(sub, (dict, list, tuple)):
                    stack.append((sub, f"{path}[{key!r}]"))
        elif isinstance(item, (list, tuple)):
            stack.extend(
                (sub, f"{path}[{i}]")
                for i, sub in enumerate(item)
                if isinstance(sub, (dict, list, tuple))
            )
    return None
