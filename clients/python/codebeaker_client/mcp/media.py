"""Which bytes are an image a model can be shown, and which are text it can read.

MCP clients render ``image`` content for PNG, JPEG, GIF and WebP; anything else binary is
described, not dumped. The file's own first bytes decide, not its name. A tool result
carries at most ``MAX_IMAGES`` images and ``MAX_IMAGE_BYTES`` of them.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Final

from mcp_types import ImageContent

__all__ = [
    "IMAGE_TYPES",
    "MAX_IMAGES",
    "MAX_IMAGE_BYTES",
    "image_block",
    "image_mime",
    "looks_binary",
    "pick_images",
]

IMAGE_TYPES: Final = ("image/png", "image/jpeg", "image/gif", "image/webp")
"""Image types MCP clients show; a cell's other representations stay text."""
MAX_IMAGE_BYTES: Final = 5 * 1024 * 1024
"""Bytes of images one tool result carries at most: clients refuse bigger ones."""
MAX_IMAGES: Final = 8
"""Images one tool result carries at most: each costs the model many tokens to look at."""

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


def image_block(data: bytes | str, mime: str) -> ImageContent:
    """An image content block from raw bytes or from base64 text as the server sends it."""
    encoded = data if isinstance(data, str) else base64.b64encode(data).decode("ascii")
    return ImageContent(type="image", data=encoded, mime_type=mime)


def pick_images(encoded: Sequence[str]) -> tuple[list[int], str | None]:
    """Which of the base64 images ``encoded`` one tool result sends: in order, each one that
    still fits within ``MAX_IMAGES`` and ``MAX_IMAGE_BYTES``. Their indices, and a note on
    the others (None when all fit)."""
    kept: list[int] = []
    used = left_bytes = 0
    for index, data in enumerate(encoded):
        size = len(data) * 3 // 4 - data[-2:].count("=")
        if len(kept) < MAX_IMAGES and used + size <= MAX_IMAGE_BYTES:
            kept.append(index)
            used += size
        else:
            left_bytes += size
    left = len(encoded) - len(kept)
    if not left:
        return kept, None
    note = (
        f"{left} of {len(encoded)} images ({left_bytes / 2**20:.1f} MiB) left out: a result "
        f"carries at most {MAX_IMAGES} images and {MAX_IMAGE_BYTES // 2**20} MiB of them; "
        "save them to files and read_file them one at a time."
    )
    return kept, note
