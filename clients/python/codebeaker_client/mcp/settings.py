"""What ``codebeaker mcp`` is configured with: flags first, then environment, then defaults.

Kept free of the ``mcp`` package so the command line can parse flags (and ``--help``) even
where the optional extra is not installed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

__all__ = [
    "DEFAULT_BUDGET",
    "DEFAULT_HTTP_PORT",
    "DEFAULT_LANGUAGE",
    "DEFAULT_WAIT_SECONDS",
    "Settings",
    "Transport",
]

Transport = Literal["stdio", "http"]

DEFAULT_WAIT_SECONDS: Final = 30.0
"""How long ``shell``/``execute_code``/``process_output`` wait before answering "still
running": under the ~60 s most MCP clients give a tool call."""
DEFAULT_BUDGET: Final = 20_000
"""Characters of output one tool result carries; past it the middle is cut."""
DEFAULT_LANGUAGE: Final = "python"
"""Language of the session a client gets without asking: ``python`` comes from the warm pool."""
DEFAULT_HTTP_PORT: Final = 8000
MAX_WAIT_SECONDS: Final = 300.0
"""A bound on any wait, whatever a flag or a caller asks: a tool call must come back."""


@dataclass(frozen=True)
class Settings:
    """Everything the MCP server needs to know; built once by the command line."""

    url: str | None = None
    """CodeBeaker's JSON-RPC endpoint; None leaves it to the SDK (``CODEBEAKER_URL`` or its
    default)."""
    api_key: str | None = None
    transport: Transport = "stdio"
    host: str = "127.0.0.1"
    port: int = DEFAULT_HTTP_PORT
    wait_seconds: float = DEFAULT_WAIT_SECONDS
    budget: int = DEFAULT_BUDGET
    language: str = DEFAULT_LANGUAGE

    def __post_init__(self) -> None:
        if not 0 < self.wait_seconds <= MAX_WAIT_SECONDS:
            raise ValueError(f"wait seconds must be in (0, {MAX_WAIT_SECONDS:g}]")
        if self.budget < 1000:
            raise ValueError("the output budget must be at least 1000 characters")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **flags: Any) -> Settings:
        """Settings from ``CODEBEAKER_*`` variables, with the ``flags`` given (not None) on
        top. Raises ``ValueError`` for a value out of range or not a number."""
        env = os.environ if env is None else env
        fields: dict[str, Any] = {
            "url": env.get("CODEBEAKER_URL") or None,
            "api_key": env.get("CODEBEAKER_API_KEY") or None,
        }
        if "CODEBEAKER_MCP_WAIT_SECONDS" in env:
            fields["wait_seconds"] = float(env["CODEBEAKER_MCP_WAIT_SECONDS"])
        if "CODEBEAKER_MCP_OUTPUT_BUDGET" in env:
            fields["budget"] = int(env["CODEBEAKER_MCP_OUTPUT_BUDGET"])
        if "CODEBEAKER_MCP_LANGUAGE" in env:
            fields["language"] = env["CODEBEAKER_MCP_LANGUAGE"]
        fields.update({name: value for name, value in flags.items() if value is not None})
        return cls(**fields)
