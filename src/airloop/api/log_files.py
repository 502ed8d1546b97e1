"""Reading a try's log file: the tail, a byte range, or all of it in chunks. Blocking
functions (callers run them with ``airloop.runtime.in_thread``); the text they return
is masked.

Pieces end at a line end whenever one is in reach, so a secret on a line is never cut
in two (each piece is masked on its own) and the next piece starts on a line start.
Offsets are bytes; text is decoded as UTF-8 (bytes that are not become U+FFFD).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO

from airloop.core.masking import redact_text

#: What a range read returns when no limit is given, and the download's chunk size.
CHUNK = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Piece:
    content: str
    offset: int
    next_offset: int
    size: int


def _utf8_end(data: bytes) -> int:
    """Where ``data`` ends without a partial UTF-8 character at its end."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte & 0xC0 == 0x80:  # a continuation byte: look further back
            continue
        if byte & 0x80 == 0:  # ASCII
            return len(data)
        need = 2 if byte & 0xE0 == 0xC0 else 3 if byte & 0xF0 == 0xE0 else 4
        return len(data) if back >= need else len(data) - back
    return len(data)


def _cut(data: bytes, *, at_eof: bool, full: bool) -> bytes:
    """``data`` up to its last line end (all of it at the end of a finished file);
    a line longer than the piece (``full``) is cut at a character boundary, and the
    unfinished last line of a growing file waits for its end."""
    if at_eof:
        return data
    newline = data.rfind(b"\n")
    if newline >= 0:
        return data[: newline + 1]
    return data[: _utf8_end(data)] if full else b""


def _size(f: BinaryIO) -> int:
    return f.seek(0, 2)


def _piece(f: BinaryIO, offset: int, limit: int, size: int, growing: bool) -> Piece:
    f.seek(offset)
    data = f.read(limit)
    at_eof = offset + len(data) >= size and not growing
    data = _cut(data, at_eof=at_eof, full=len(data) >= limit)
    text = redact_text(data.decode("utf-8", errors="replace"))
    return Piece(text, offset, offset + len(data), size)


def read_range(path: str, offset: int, limit: int = CHUNK, growing: bool = False) -> Piece:
    """``limit`` bytes from ``offset`` (fewer: to the last line end before them).
    ``growing``: the try is still writing, so a last line without its end waits."""
    with open(path, "rb") as f:
        size = _size(f)
        offset = min(offset, size)
        return _piece(f, offset, limit, size, growing)


def read_tail(path: str, nbytes: int, growing: bool = False) -> Piece:
    """The last ``nbytes`` of the file, starting at a line start (the whole of a
    last line longer than that: from where the bytes begin)."""
    with open(path, "rb") as f:
        size = _size(f)
        start = max(0, size - nbytes)
        if start > 0:
            f.seek(start - 1)
            head = f.read(min(nbytes, CHUNK) + 1)
            newline = head.find(b"\n")
            if 0 <= newline < len(head) - 1:
                start += newline  # just after that line end
        return _piece(f, start, size - start, size, growing)


class ChunkReader:
    """A whole file in pieces of about ``CHUNK`` bytes, each ending at a line end."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.offset = 0
        self.done = False

    def next(self) -> str | None:
        """The next piece (None: the end)."""
        if self.done:
            return None
        piece = read_range(self.path, self.offset, CHUNK)
        if piece.next_offset <= self.offset:
            self.done = True
            return None
        self.offset = piece.next_offset
        return piece.content
