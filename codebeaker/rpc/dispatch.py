"""One WebSocket text frame in, at most one text frame out (JSON-RPC 2.0 via jsonrpcserver).

A frame is read (``read_frame``: size, JSON, batch length, id length), each request charged
to its tenant's rate, answered on its own and audited (``answer``), and each reply
serialized within the reply limit (``seal``). The transport
runs these steps itself so that every batch item counts against its in-flight cap;
``handle_frame`` strings them together for callers without a connection.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from dataclasses import dataclass, field
from typing import Any

import fastjsonschema
from codebeaker_client.models import RpcErrorResponse
from jsonrpcserver import async_dispatch_to_serializable
from jsonrpcserver.main import schema as request_schema

from codebeaker.api.wire import clip, dumps
from codebeaker.audit import AUDIT
from codebeaker.errors import rpc_error
from codebeaker.exceptions import (
    BatchTooLongError,
    CodeBeakerError,
    IdTooLongError,
    InvalidParamsError,
    LimitExceededError,
    MalformedRequestError,
    PayloadTooLargeError,
)
from codebeaker.rpc.methods import METHODS, Call
from codebeaker.rpc.streaming import Notify, nowhere
from codebeaker.rpc.watch import Watches
from codebeaker.service import SandboxService
from codebeaker.settings import Settings

__all__ = ["Frame", "answer", "dumps", "error_reply", "handle_frame", "join", "read_frame", "seal"]

METHOD_NOT_FOUND = -32601
MAX_PARAMS_MEMBERS = 64
"""Every method takes a handful of named params: 300,000 unknown ones are refused whole."""
MAX_ID_CHARS = 256
"""A request ``id`` is echoed in every reply, including every error that replaces one over
a budget: a 15 MiB id would make each of those 15 MiB. At most this many characters, and
``MAX_ID_JSON`` bytes as JSON (escapes count), so such an error always fits the smallest
budget (1 KiB)."""
MAX_ID_JSON = MAX_ID_CHARS + 2
UNANSWERED_KINDS: dict[Any, str] = {
    -32700: "parse_error",
    -32600: "invalid_request",
    METHOD_NOT_FOUND: "method_not_found",
}
"""The audit outcome of a request jsonrpcserver refused before any method ran."""

validate_request = fastjsonschema.compile(request_schema)
"""jsonrpcserver's own request schema, compiled: the same rules ~20x faster than jsonschema,
which cost more than the rest of a `session.list`."""


@dataclass(frozen=True)
class Frame:
    """A frame read: its requests (a lone request is a list of one), or, when it cannot be
    run at all, the one reply it gets."""

    requests: list[Any] = field(default_factory=list)
    batch: bool = False
    reply: str | None = None


def error_reply(exc: BaseException, request_id: Any = None) -> str:
    """The reply text of an error answered outside jsonrpcserver."""
    return dumps(RpcErrorResponse(id=request_id, error=rpc_error(exc)).to_wire())


def read_frame(text: str, settings: Settings) -> Frame:
    """Check a frame's size, parse it, and check a batch's length, before anything runs."""
    limit = settings.max_message_bytes
    if len(text) > limit or len(text.encode("utf-8", errors="surrogatepass")) > limit:
        return Frame(reply=error_reply(PayloadTooLargeError("message_size", limit)))
    try:
        parsed = json.loads(text, parse_float=_finite, parse_constant=_not_json)
    except _NotFinite as exc:  # an id of 1e400 would be answered as Infinity: not JSON
        message = f"numbers must be finite JSON numbers: {exc}"
        return Frame(reply=error_reply(MalformedRequestError(message)))
    except ValueError as exc:
        message = f"Parse error: {clip(str(exc), 200)}"
        return Frame(reply=error_reply(MalformedRequestError(message)))
    except RecursionError:  # nested too deeply for the parser: still a parse error
        return Frame(reply=error_reply(MalformedRequestError("the frame is nested too deeply")))
    if not isinstance(parsed, list) or not parsed:  # an empty batch is one invalid request
        requests = [parsed]
    elif len(parsed) > settings.max_batch_items:
        return Frame(reply=error_reply(BatchTooLongError(len(parsed), settings.max_batch_items)))
    else:
        requests = parsed
    if any(_id_too_long(request) for request in requests):
        return Frame(reply=error_reply(IdTooLongError(MAX_ID_CHARS, MAX_ID_JSON)))
    return Frame(requests=requests, batch=isinstance(parsed, list) and bool(parsed))


def _id_too_long(request: Any) -> bool:
    if not isinstance(request, dict) or "id" not in request:
        return False
    value = request["id"]
    if isinstance(value, str) and len(value) > MAX_ID_CHARS:
        return True  # before writing megabytes of it as JSON
    try:  # an object or array is no valid id, but a small one gets jsonrpcserver's answer
        return len(dumps(value)) > MAX_ID_JSON
    except (ValueError, RecursionError):
        return True


async def answer(
    request: Any,
    service: SandboxService,
    notify: Notify = nowhere,
    watches: Watches | None = None,
) -> Any:
    """The reply to one request (not yet serialized); None for a notification. Every
    request, valid or not, is charged to its tenant's rate first and leaves one audit line."""
    if isinstance(request, list):  # a batch inside a batch is one invalid request (-32600)
        request = None
    started = time.monotonic()
    call = Call(service, request.get("id") if isinstance(request, dict) else None, notify, watches)
    reply = await _answer(request, call)
    method = request.get("method") if isinstance(request, dict) else None
    AUDIT.record(
        tenant=call.tenant.name,
        door="jsonrpc",
        method=clip(method) if isinstance(method, str) else "(invalid request)",
        session_id=call.trace.session_id,
        command=call.trace.command,
        outcome=call.trace.outcome or _unanswered(reply),
        started=started,
    )
    return reply


async def _answer(request: Any, call: Call) -> Any:
    notification = isinstance(request, dict) and "id" not in request
    try:
        call.tenant.admit()
        _check_params(request)
    except CodeBeakerError as exc:  # refused before jsonrpcserver and pydantic see it
        refusal = rpc_error(exc)
        call.trace.outcome = refusal.data.kind
        if notification:
            return None
        return RpcErrorResponse(id=call.request_id, error=refusal).to_wire()
    reply = await async_dispatch_to_serializable(
        "", METHODS, context=call, deserializer=lambda _: request, validator=validate_request
    )
    error = reply.get("error") if isinstance(reply, dict) else None
    if isinstance(error, dict) and error.get("code") == METHOD_NOT_FOUND:
        # jsonrpcserver repeats the method name: never megabytes of it
        error["data"] = clip(str(error.get("data", "")))
    return reply


def _check_params(request: Any) -> None:
    """Refuse more params than any method takes before jsonrpcserver and pydantic copy and
    check every member."""
    params = request.get("params") if isinstance(request, dict) else None
    if isinstance(params, dict) and len(params) > MAX_PARAMS_MEMBERS:
        message = (
            f"params has {len(params)} members; no method takes more than {MAX_PARAMS_MEMBERS}"
        )
        raise InvalidParamsError.single(["params"], message)


def _unanswered(reply: Any) -> str:
    """The audit outcome of a request no method ran: what jsonrpcserver answered."""
    error = reply.get("error") if isinstance(reply, dict) else None
    if not isinstance(error, dict):
        return "not_run"  # a notification no method ran gets no reply
    return UNANSWERED_KINDS.get(error.get("code"), "invalid_request")


def seal(reply: Any, settings: Settings) -> str:
    """A reply as text within ``max_reply_bytes``: a larger one becomes ``limit_exceeded``,
    one JSON cannot hold (NaN from somewhere below, or a value nested past the recursion
    limit) an internal error, both with its id."""
    request_id = reply.get("id") if isinstance(reply, dict) else None
    try:
        text = dumps(reply)
    except (ValueError, RecursionError) as exc:  # NaN, or nested deeper than we can write
        return error_reply(exc, request_id)
    limit = settings.max_reply_bytes
    if len(text) > limit:
        message = (
            f"the reply is {len(text)} bytes, over the {limit} byte limit "
            "(CODEBEAKER_MAX_REPLY_BYTES); ask for less at once"
        )
        return error_reply(LimitExceededError("reply_size", message), request_id)
    return text


def join(replies: list[str]) -> str | None:
    """A batch's reply from its items' (already serialized); None when all were
    notifications."""
    return "[" + ",".join(replies) + "]" if replies else None


async def handle_frame(
    text: str, service: SandboxService, notify: Notify = nowhere, watches: Watches | None = None
) -> str | None:
    """The reply to one frame; None for notifications and all-notification batches.

    Batch items are answered one by one (concurrently) so that one malformed item gets
    its own "invalid request" error instead of failing the whole batch.
    """
    settings = service.settings
    frame = read_frame(text, settings)
    if frame.reply is not None:
        return frame.reply
    replies = await asyncio.gather(
        *(answer(request, service, notify, watches) for request in frame.requests)
    )
    sealed = [seal(reply, settings) for reply in replies if reply is not None]
    if frame.batch:
        return join(sealed)
    return sealed[0] if sealed else None


class _NotFinite(ValueError):
    """NaN, Infinity, or a number too large for a float: Python reads them, JSON has none."""


def _finite(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise _NotFinite(literal[:40])
    return value


def _not_json(literal: str) -> float:
    raise _NotFinite(literal)
