"""The framing the server, the agent and each code-context kernel speak: ``>II`` (header
length, body length), a JSON header, the raw body. Standard library only: baked into every
image beside agent.py and kernel.py."""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Iterator
from typing import Any

Header = dict[str, Any]

FRAME = struct.Struct(">II")


class FrameError(ValueError):
    """A frame larger than the reader allows, or a header that is not a JSON object."""


def encode(header: Header, body: bytes = b"") -> bytes:
    head = json.dumps(header, separators=(",", ":")).encode()
    return FRAME.pack(len(head), len(body)) + head + body


def decode(buffer: bytearray, limit: int | None = None) -> Iterator[tuple[Header, bytes]]:
    """Take every complete frame off the front of ``buffer``. With ``limit`` (a peer that
    is not trusted: a kernel runs user code), a larger frame or a bad header raises."""
    while len(buffer) >= FRAME.size:
        head_size, body_size = FRAME.unpack_from(buffer)
        if limit is not None and head_size + body_size > limit:
            raise FrameError(f"a frame of {head_size + body_size} bytes is over {limit}")
        end = FRAME.size + head_size + body_size
        if len(buffer) < end:
            return
        try:
            header = json.loads(buffer[FRAME.size : FRAME.size + head_size])
        except ValueError as exc:
            raise FrameError(f"a frame header is not JSON: {exc}") from None
        if not isinstance(header, dict):
            raise FrameError("a frame header is not a JSON object")
        body = bytes(buffer[FRAME.size + head_size : end])
        del buffer[:end]
        yield header, body


def write_ready(fd: int, pending: bytearray, chunk: int = 64 * 1024) -> bool:
    """Write as much of ``pending`` to a non-blocking ``fd`` as it takes now, removing
    what was written; False when the reader is gone (what is left is then dropped)."""
    try:
        while pending:
            del pending[: os.write(fd, pending[:chunk])]
    except BlockingIOError:
        pass
    except OSError:
        pending.clear()
        return False
    return True


def read_ready(fd: int, chunk: int = 64 * 1024) -> bytes | None:
    """What a non-blocking ``fd`` holds now (at most ``chunk``): None when nothing yet,
    empty at its end or when it failed."""
    try:
        return os.read(fd, chunk)
    except BlockingIOError:
        return None
    except OSError:
        return b""
