"""The server's side of the wire: JSON out, and client input validated against its maxima.

The models themselves live in ``codebeaker_client.models``, shared with the SDK; here they
meet the server's settings (see that package's ``wire`` module for why limits fail closed).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from codebeaker_client.models.wire import SETTINGS_CONTEXT
from pydantic import TypeAdapter, ValidationError

from codebeaker.exceptions import InvalidParamsError
from codebeaker.settings import Settings

__all__ = [
    "MAX_ECHO_CHARS",
    "MAX_FIELD_ERRORS",
    "clip",
    "context_for",
    "dumps",
    "field_errors",
    "parse",
]

T = TypeVar("T")


def dumps(message: Any) -> str:
    """Compact JSON, as the spec's examples show it, in ASCII: a lone surrogate (from a file
    name that is not UTF-8) stays an escape instead of breaking the encoder. NaN and
    Infinity raise ``ValueError``: JSON has no such numbers, and we never send what a strict
    parser would reject. ASCII also makes ``len`` of the text its size in bytes."""
    return json.dumps(message, separators=(",", ":"), allow_nan=False)


MAX_FIELD_ERRORS = 20
"""Field errors a reply lists; the rest are counted in one last entry, so that 300,000
unknown keys cannot make a 25 MB error reply."""
MAX_DETAILED_ERRORS = 1000
"""Past this many, pydantic's errors are only counted: building each one's details
(300,000 unknown keys: 0.8 s and 300 MB) would stall the server for one bad request."""
MAX_ECHO_CHARS = 64
"""What we repeat of a client's own text (a key, a method name) in an error."""
MAX_MESSAGE_CHARS = 200


def clip(text: str, limit: int = MAX_ECHO_CHARS) -> str:
    """A client's text as an error repeats it: never more than ``limit`` characters."""
    return text if len(text) <= limit else text[:limit] + "…"


def context_for(settings: Settings) -> dict[str, Any]:
    """The validation context that lets request models check the server's maxima."""
    return {SETTINGS_CONTEXT: settings}


def field_errors(errors: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """pydantic's (or FastAPI's) errors, trimmed to what the spec promises: loc, msg, type;
    at most ``MAX_FIELD_ERRORS`` of them (then one ``too_many_errors`` entry counting the
    rest), with the client's keys and pydantic's messages (which may quote input) clipped."""
    trimmed: list[dict[str, Any]] = []
    more = 0
    for error in errors:
        if len(trimmed) == MAX_FIELD_ERRORS:
            more += 1
            continue
        loc = [part if isinstance(part, int) else clip(str(part)) for part in error["loc"]]
        msg = clip(str(error["msg"]), MAX_MESSAGE_CHARS)
        trimmed.append({"loc": loc, "msg": msg, "type": clip(str(error["type"]))})
    if more:
        message = f"{more} more errors not listed"
        trimmed.append({"loc": [], "msg": message, "type": "too_many_errors"})
    return trimmed


_ADAPTERS: dict[type[Any], TypeAdapter[Any]] = {}


def _adapter(model: type[T]) -> TypeAdapter[T]:
    """One adapter per model: building one costs more than a validation."""
    adapter = _ADAPTERS.get(model)
    if adapter is None:
        adapter = _ADAPTERS[model] = TypeAdapter(model)
    return adapter


def parse(
    model: type[T] | TypeAdapter[T], data: Any, settings: Settings, *, json: bool = False
) -> T:
    """Validate what a client sent (``json``: still as text) with the server's limits;
    every bad field is named in one ``InvalidParamsError``. Every door parses with this."""
    adapter = model if isinstance(model, TypeAdapter) else _adapter(model)
    context = context_for(settings)
    try:
        if json:
            return adapter.validate_json(data, context=context)
        return adapter.validate_python(data, context=context)
    except ValidationError as exc:
        count = exc.error_count()
        if count > MAX_DETAILED_ERRORS:  # listing them all first would cost seconds and GBs
            message = f"{count} errors, too many to list (unknown keys, or many bad items?)"
            error = {"loc": [], "msg": message, "type": "too_many_errors"}
            raise InvalidParamsError([error]) from None
        trimmed = exc.errors(include_url=False, include_context=False, include_input=False)
        raise InvalidParamsError(field_errors(trimmed)) from None
