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

__all__ = ["context_for", "dumps", "field_errors", "parse"]

T = TypeVar("T")


def dumps(message: Any) -> str:
    """Compact JSON, as the spec's examples show it, in ASCII: a lone surrogate (from a file
    name that is not UTF-8) stays an escape instead of breaking the encoder."""
    return json.dumps(message, separators=(",", ":"))


def context_for(settings: Settings) -> dict[str, Any]:
    """The validation context that lets request models check the server's maxima."""
    return {SETTINGS_CONTEXT: settings}


def field_errors(errors: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """pydantic's (or FastAPI's) errors, trimmed to what the spec promises: loc, msg, type."""
    return [
        {"loc": list(error["loc"]), "msg": error["msg"], "type": error["type"]} for error in errors
    ]


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
        trimmed = exc.errors(include_url=False, include_context=False, include_input=False)
        raise InvalidParamsError(field_errors(trimmed)) from None
