"""How commands reach a container: the abstract driver and the values it trades in.

Implementations differ in transport (one Docker exec per command today; an agent living
in the container later) but keep the same behaviour: argv without a shell, uid 1000,
whole-tree kill on timeout, capped output, file operations under the path rules.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Driver", "ProcessRequest", "ProcessResult"]


@dataclass(frozen=True)
class ProcessRequest:
    argv: tuple[str, ...]
    workdir: str
    timeout: float
    output_limit: int
    """Cap per stream, in bytes; past it the command is killed."""
    env: Mapping[str, str] = field(default_factory=dict)
    stdin: bytes | None = None


@dataclass(frozen=True)
class ProcessResult:
    stdout: bytes
    stderr: bytes
    exit_code: int
    timed_out: bool = False
    truncated: bool = False
    error: str | None = None
    """``"<kind>: <detail>"`` when the process failed to start or was cut short."""


class Driver(ABC):
    """Runs processes and file operations in one container."""

    def __init__(self, container_id: str) -> None:
        self.container_id = container_id

    @abstractmethod
    async def run(self, request: ProcessRequest) -> ProcessResult:
        """Run to completion; never raises for the program's own failures."""

    @abstractmethod
    async def file_op(self, op: str, **params: Any) -> dict[str, Any]:
        """One guest file operation; a refused one raises ``CommandFailedError``."""

    async def aclose(self) -> None:  # noqa: B027 - drivers without resources need nothing
        """Release what the driver holds (not the container)."""
