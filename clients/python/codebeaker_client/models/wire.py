"""What every wire model shares: camelCase names, strict fields, and fail-closed server limits.

Limits that depend on the server's settings read them from the validation context
(``{"settings": <object with the maxima as attributes>}``). A model validated without that
context rejects any value a limit applies to instead of skipping the check: a server door
that forgets the context fails loudly in its tests, never silently lets a value past a
maximum. A client, which cannot know the maxima, says so with ``CLIENT_CONTEXT`` and
leaves the check to the server.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Final, TypeVar

from pydantic import BaseModel, ConfigDict, PlainSerializer, ValidationInfo
from pydantic.alias_generators import to_camel

__all__ = [
    "CLIENT_CONTEXT",
    "SETTINGS_CONTEXT",
    "Timestamp",
    "WireModel",
    "at_most",
    "iso",
    "no_nul",
    "unicode_text",
    "unset",
    "validate_env",
]

SETTINGS_CONTEXT = "settings"
Number = TypeVar("Number", int, float)


class _ServerChecks:
    """The maxima are the server's to check: a client cannot know them."""


CLIENT_CONTEXT: Final[dict[str, Any]] = {SETTINGS_CONTEXT: _ServerChecks()}


def iso(moment: datetime) -> str:
    """UTC, second precision, ``Z`` suffix: what the spec's examples show."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


Timestamp = Annotated[datetime, PlainSerializer(iso, return_type=str, when_used="json")]
"""A moment on the wire: ``2026-01-01T12:00:00Z``."""


def at_most(value: Number | None, info: ValidationInfo, maximum: str) -> Number | None:
    """A value above the server setting ``maximum`` is a validation error, never clamped;
    without the server's settings in the context it is refused outright (fail closed)."""
    if value is None:
        return value
    settings = (info.context or {}).get(SETTINGS_CONTEXT)
    if isinstance(settings, _ServerChecks):
        return value
    limit = getattr(settings, maximum, None)
    if not isinstance(limit, int | float):
        raise ValueError(f"cannot be checked against the server maximum {maximum!r} here")
    if value > limit:
        shown = limit if isinstance(limit, int) else f"{limit:g}"
        raise ValueError(f"must be at most {shown} (server maximum)")
    return value


def unset(value: object) -> bool:
    """``exclude_if`` of optional fields that are left out of the wire when None."""
    return value is None


def unicode_text(value: str) -> str:
    """Text that has a UTF-8 form. JSON can carry a lone surrogate (``"\\ud800"``), which
    no process, file or pipe can be given: refused here, not failed on deep inside."""
    try:
        value.encode()
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text (a lone surrogate is not)") from None
    return value


def no_nul(value: str) -> str:
    """A string the operating system can take: a path, an argument, an environment value."""
    if "\0" in value:
        raise ValueError("must not contain NUL characters")
    return unicode_text(value)


def validate_env(env: dict[str, str]) -> dict[str, str]:
    """Names a process environment can hold: no ``=``, no NUL, not empty."""
    for key, value in env.items():
        if not key or "=" in key or "\0" in key:
            raise ValueError(f"invalid environment variable name {key!r}")
        unicode_text(key)
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
