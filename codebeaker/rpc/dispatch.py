"""One WebSocket text frame in, at most one text frame out (JSON-RPC 2.0 via jsonrpcserver)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from jsonrpcserver import async_dispatch_to_serializable

from codebeaker.exceptions import LimitExceededError
from codebeaker.rpc.errors import error_for
from codebeaker.rpc.methods import METHODS, Services

__all__ = ["dumps", "handle_frame"]


def dumps(message: Any) -> str:
    """Compact JSON, as the spec's examples show it."""
    return json.dumps(message, separators=(",", ":"))  # ASCII: lone surrogates stay escapes


async def handle_frame(text: str, services: Services) -> str | None:
    """The reply to one frame; None for notifications and all-notification batches.

    Batch items are dispatched one by one (concurrently) so that one malformed item gets
    its own "invalid request" error instead of failing the whole batch.
    """
    limit = services.settings.max_message_bytes
    if len(text) > limit or len(text.encode("utf-8", errors="surrogatepass")) > limit:
        error = error_for(LimitExceededError("message_size", f"message over {limit} bytes"))
        return dumps(error.to_wire())
    try:
        parsed = json.loads(text)
    except ValueError:
        # let jsonrpcserver word the parse error
        reply = await async_dispatch_to_serializable(text, METHODS, context=services)
        return None if reply is None else dumps(reply)
    if isinstance(parsed, list) and parsed:
        replies = await asyncio.gather(*(_dispatch_one(item, services) for item in parsed))
        answered = [reply for reply in replies if reply is not None]
        return dumps(answered) if answered else None
    reply = await _dispatch_one(parsed, services)
    return None if reply is None else dumps(reply)


async def _dispatch_one(request: Any, services: Services) -> Any:
    return await async_dispatch_to_serializable(
        "", METHODS, context=services, deserializer=lambda _: request
    )
