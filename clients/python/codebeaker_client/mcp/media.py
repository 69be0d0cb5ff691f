"""Which bytes are an image a model can be shown, and which are text it can read.

MCP clients render ``image`` content for PNG, JPEG, GIF and WebP; anything else binary is
described, not dumped. The file's own first bytes decide, not its name.
"""

from __future__ import annotations

from typing import Final

__all__ = ["image_mime", "looks_binary"]

SNIFF_BYTES: Final = 8192
"""How much of a file decides whether it is binary."""


def image_mime(data: bytes) -> str | None:
    """The MIME type of an image format MCP clients show, from its signature; else None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if len(data) >= 12 and data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def looks_binary(data: bytes) -> bool:
    """NUL bytes, or bytes that are not UTF-8, near the start: not text a model can read."""
    head = data[:SNIFF_BYTES]
    if b"\0" in head:
        return True
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # a multi-byte character split by the sniff window is still text
        return exc.start < len(head) - 3
    return False
