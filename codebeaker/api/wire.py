"""What every wire model shares: camelCase names, strict fields, and fail-closed server limits.

Limits that depend on the server's settings read them from the validation context
(``{"settings": Settings}``). A model validated without that context rejects any value a
limit applies to instead of skipping the check: a door that forgets the context fails
loudly in its tests, never silently lets a value past a maximum.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    PlainSerializer,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
)
from pydantic.alias_generators import to_camel

from codebeaker.exceptions import InvalidParamsError
from codebeaker.settings import Settings

__all__ = [
    "SETTINGS_CONTEXT",
    "Timestamp",
    "WireModel",
    "at_most",
    "context_for",
    "dumps",
    "field_errors",
    "iso",
    "no_nul",
    "parse",
    "unset",
    "validate_env",
]

SETTINGS_CONTEXT = "settings"
Number = TypeVar("Number", int, float)
T = TypeVar("T")


def dumps(message: Any) -> str:
    """Compact JSON, as the spec's examples show it, in ASCII: a lone surrogate (from a file
    name that is not UTF-8) stays an escape instead of breaking the encoder."""
    return json.dumps(message, separators=(",", ":"))


def iso(moment: datetime) -> str:
    """UTC, second precision, ``Z`` suffix: what the spec's examples show."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


Timestamp = Annotated[datetime, PlainSerializer(iso, return_type=str, when_used="json")]
"""A moment on the wire: ``2026-01-01T12:00:00Z``."""


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


def at_most(value: Number | None, info: ValidationInfo, maximum: str) -> Number | None:
    """A value above the server setting ``maximum`` is a validation error, never clamped;
    without the server's settings in the context it is refused outright (fail closed)."""
    if value is None:
        return value
    settings = (info.context or {}).get(SETTINGS_CONTEXT)
    if not isinstance(settings, Settings):
        raise ValueError(f"cannot be checked against the server maximum {maximum!r} here")
    limit = getattr(settings, maximum)
    if value > limit:
        shown = limit if isinstance(limit, int) else f"{limit:g}"
        raise ValueError(f"must be at most {shown} (server maximum)")
    return value


def unset(value: object) -> bool:
    """``exclude_if`` of optional fields that are left out of the wire when None."""
    return value is None


def no_nul(value: str) -> str:
    if "\0" in value:
        raise ValueError("must not contain NUL characters")
    return value


def validate_env(env: dict[str, str]) -> dict[str, str]:
    """Names a process environment can hold: no ``=``, no NUL, not empty."""
    for key, value in env.items():
        if not key or "=" in key or "\0" in key:
            raise ValueError(f"invalid environment variable name {key!r}")
        no_nul(value)
    return env


class WireModel(BaseModel):
    """camelCase on the wire, snake_case accepted, unknown fields refused."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra="forbid",
        frozen=True,
    )

    def to_wire(self) -> dict[str, Any]:
        """The JSON-ready form every door sends."""
        return self.model_dump(mode="json", by_alias=True)
