"""One WebSocket text frame in, at most one text frame out (JSON-RPC 2.0 via jsonrpcserver)."""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any

import fastjsonschema
from codebeaker_client.models import RpcErrorResponse
from jsonrpcserver import async_dispatch_to_serializable
from jsonrpcserver.main import schema as request_schema

from codebeaker.api.wire import dumps
from codebeaker.errors import rpc_error
from codebeaker.exceptions import MalformedRequestError, PayloadTooLargeError
from codebeaker.rpc.methods import METHODS, Call
from codebeaker.rpc.streaming import Notify, nowhere
from codebeaker.rpc.watch import Watches
from codebeaker.service import SandboxService

__all__ = ["dumps", "handle_frame"]

validate_request = fastjsonschema.compile(request_schema)
"""jsonrpcserver's own request schema, compiled: the same rules ~20x faster than jsonschema,
which cost more than the rest of a `session.list`."""


async def handle_frame(
    text: str, service: SandboxService, notify: Notify = nowhere, watches: Watches | None = None
) -> str | None:
    """The reply to one frame; None for notifications and all-notification batches.

    Batch items are dispatched one by one (concurrently) so that one malformed item gets
    its own "invalid request" error instead of failing the whole batch.
    """
    limit = service.settings.max_message_bytes
    if len(text) > limit or len(text.encode("utf-8", errors="surrogatepass")) > limit:
        error = rpc_error(PayloadTooLargeError("message_size", limit))
        return dumps(RpcErrorResponse(error=error).to_wire())
    try:
        parsed = json.loads(text, parse_float=_finite, parse_constant=_not_json)
    except _NotFinite as exc:  # an id of 1e400 would be answered as Infinity: not JSON
        error = rpc_error(MalformedRequestError(f"numbers must be finite JSON numbers: {exc}"))
        return dumps(RpcErrorResponse(error=error).to_wire())
    except ValueError:
        # let jsonrpcserver word the parse error
        reply = await async_dispatch_to_serializable(
            text, METHODS, context=Call(service), validator=validate_request
        )
        return None if reply is None else dumps(reply)
    except RecursionError:  # nested too deeply for the parser: still a parse error
        error = rpc_error(MalformedRequestError("the frame is nested too deeply"))
        return dumps(RpcErrorResponse(error=error).to_wire())
    if isinstance(parsed, list) and parsed:
        replies = await asyncio.gather(
            *(_dispatch_one(item, service, notify, watches) for item in parsed)
        )
        answered = [reply for reply in replies if reply is not None]
        return dumps(answered) if answered else None
    reply = await _dispatch_one(parsed, service, notify, watches)
    return None if reply is None else dumps(reply)


class _NotFinite(ValueError):
    """NaN, Infinity, or a number too large for a float: Python reads them, JSON has none."""


def _finite(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise _NotFinite(literal[:40])
    return value


def _not_json(literal: str) -> float:
    raise _NotFinite(literal)


async def _dispatch_one(
    request: Any, service: SandboxService, notify: Notify, watches: Watches | None
) -> Any:
    if isinstance(request, list):  # a batch inside a batch is one invalid request (-32600)
        request = None
    request_id = request.get("id") if isinstance(request, dict) else None
    call = Call(service, request_id, notify, watches)
    return await async_dispatch_to_serializable(
        "", METHODS, context=call, deserializer=lambda _: request, validator=validate_request
    )
