"""How commands reach a container: the abstract driver and the values it trades in.

Two implementations: the agent driver (one long-lived agent per container, a fork per
command) and the exec driver (one Docker exec per command, for images that cannot host the
agent). Both keep the same behaviour: argv without a shell, uid 1000, whole-tree kill on
timeout and on cancel, capped output, file operations under the path rules, streaming and
live stdin.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from codebeaker.constants import EXIT_KILLED, EXIT_TIMEOUT
from codebeaker.exceptions import ContextsUnsupportedError, LimitExceededError

__all__ = [
    "CANCELLED",
    "STREAMS",
    "CellRequest",
    "CellResult",
    "Display",
    "DisplaySink",
    "Driver",
    "OutputBuffer",
    "OutputSink",
    "ProcessRequest",
    "ProcessResult",
    "StdinPipe",
    "finished",
]

STREAMS = {1: "stdout", 2: "stderr"}  # Docker's and the agent's stream numbers
CANCELLED = "cancelled"  # the error kind of a command or cell stopped by session.cancel

OutputSink = Callable[[str, bytes], None]
"""Told each piece of output as it arrives: ``("stdout" | "stderr", data)``."""


@dataclass(frozen=True)
class ProcessRequest:
    argv: tuple[str, ...]
    workdir: str
    timeout: float
    output_limit: int
    """Cap per stream, in bytes; past it the command is killed."""
    env: Mapping[str, str] = field(default_factory=dict)
    stdin: bytes | None = None
    cancel: asyncio.Event | None = field(default=None, compare=False)
    """Set while it runs (``session.cancel``): its tree is killed as at its timeout."""


@dataclass(frozen=True)
class ProcessResult:
    stdout: bytes
    stderr: bytes
    exit_code: int
    timed_out: bool = False
    truncated: bool = False
    cancelled: bool = False
    error: str | None = None
    """``"<kind>: <detail>"`` when the process failed to start or was cut short."""


@dataclass(frozen=True)
class CellRequest:
    """One cell for a code context's interpreter."""

    code: str
    timeout: float
    output_limit: int
    """Cap per stream; past it output is dropped (the cell goes on)."""
    item_limit: int
    """Cap of each representation of a displayed value."""
    cell_limit: int
    """Cap of all displayed values of the cell together."""


@dataclass(frozen=True)
class Display:
    """A value the cell showed: its last expression's, or one it displayed."""

    kind: Literal["result", "display"]
    data: dict[str, Any]
    truncated: bool = False


DisplaySink = Callable[[Display], None]
"""Told each displayed value as it arrives."""


@dataclass(frozen=True)
class CellResult:
    status: Literal["ok", "error", "interrupted", "timeout"]
    execution_count: int
    stdout: bytes
    stderr: bytes
    displays: list[Display]
    error: dict[str, str] | None
    state_preserved: bool
    truncated: bool


class StdinPipe:
    """Input that reaches a command while it runs (``session.input``); ``None`` is EOF.
    At most ``limit`` bytes wait here: for a command still queued behind another, or for
    one that reads slower than it is sent input (the agent takes only what its window
    allows), so a program that never reads makes ``write`` refuse, not the server grow."""

    def __init__(self, limit: int) -> None:
        self._chunks: deque[bytes] = deque()
        self._arrived = asyncio.Event()
        self._limit = limit
        self.waiting = 0
        """Bytes written and not yet read."""
        self.closed = False

    def write(self, data: bytes, eof: bool = False) -> None:
        if self.closed:
            raise RuntimeError("stdin is already closed")
        if self.waiting + len(data) > self._limit:
            raise LimitExceededError(
                "stdin", f"more than {self._limit} bytes of input wait for the command"
            )
        if data:
            self.waiting += len(data)
            self._chunks.append(data)
        self.closed = eof
        self._arrived.set()

    async def read(self, limit: int | None = None) -> bytes | None:
        """The next piece of input, at most ``limit`` bytes (the rest stays first in
        line); None once it is all read and EOF was written."""
        while not self._chunks:
            if self.closed:
                return None
            self._arrived.clear()
            await self._arrived.wait()
        chunk = self._chunks.popleft()
        if limit is not None and len(chunk) > limit:
            self._chunks.appendleft(chunk[limit:])
            chunk = chunk[:limit]
        self.waiting -= len(chunk)
        return chunk


class OutputBuffer:
    """stdout and stderr as they arrive, each cut at ``limit``; passes the kept part on."""

    def __init__(self, limit: int, sink: OutputSink | None = None) -> None:
        self.limit = limit
        self.parts: dict[int, bytearray] = {1: bytearray(), 2: bytearray()}
        self.overflowed = False
        self._sink = sink

    def feed(self, stream: int, data: bytes) -> None:
        stream = stream if stream in self.parts else 2
        buffer = self.parts[stream]
        room = self.limit - len(buffer)
        kept = data[: max(room, 0)]
        buffer += kept
        if len(data) > room:
            self.overflowed = True
        if kept and self._sink is not None:
            self._sink(STREAMS[stream], kept)

    @property
    def stdout(self) -> bytes:
        return bytes(self.parts[1])

    @property
    def stderr(self) -> bytes:
        return bytes(self.parts[2])


def finished(
    request: ProcessRequest,
    output: OutputBuffer,
    exit_code: int,
    *,
    timed_out: bool,
    cancelled: bool = False,
) -> ProcessResult:
    """The result of a process that ran: a timeout, a cancel or a flood wins over its exit
    code (in that order, should several have ended it)."""
    if timed_out:
        return ProcessResult(
            output.stdout,
            output.stderr,
            EXIT_TIMEOUT,
            timed_out=True,
            error=f"timeout: command exceeded {request.timeout:g}s and was killed",
        )
    if cancelled:
        return ProcessResult(
            output.stdout,
            output.stderr,
            EXIT_KILLED,
            cancelled=True,
            error=f"{CANCELLED}: stopped by session.cancel; its processes were killed",
        )
    if output.overflowed:
        return ProcessResult(
            output.stdout,
            output.stderr,
            EXIT_KILLED,
            truncated=True,
            error=f"output_limit_exceeded: output passed {request.output_limit} bytes per stream",
        )
    return ProcessResult(output.stdout, output.stderr, exit_code)


class Driver(ABC):
    """Runs processes and file operations in one container."""

    def __init__(self, container_id: str) -> None:
        self.container_id = container_id

    async def start(self) -> None:  # noqa: B027 - drivers with nothing to prepare need nothing
        """Get ready for the first command now rather than on it (a pooled container)."""

    @abstractmethod
    async def run(
        self,
        request: ProcessRequest,
        *,
        on_output: OutputSink | None = None,
        stdin: StdinPipe | None = None,
    ) -> ProcessResult:
        """Run to completion; never raises for the program's own failures. With ``stdin``
        the program's input stays open after ``request.stdin`` until the pipe says EOF."""

    @abstractmethod
    async def file_op(self, op: str, **params: Any) -> dict[str, Any]:
        """One guest file operation; a refused one raises ``CommandFailedError``."""

    async def start_context(
        self, name: str, marker: str, cwd: str, env: Mapping[str, str], grace: float
    ) -> int:
        """Start a code context's interpreter; its pid. ``grace``: how long a cell may take
        to stop after its interrupt before it is killed. Only the agent hosts contexts."""
        raise ContextsUnsupportedError()

    async def run_cell(
        self,
        name: str,
        request: CellRequest,
        *,
        on_output: OutputSink | None = None,
        on_display: DisplaySink | None = None,
        stdin: StdinPipe | None = None,
    ) -> CellResult | None:
        """Run one cell; None when the sandbox no longer has the context (its agent was
        started again), so the caller starts it anew."""
        raise ContextsUnsupportedError()

    async def context_op(self, op: str, name: str) -> dict[str, Any]:
        """``interrupt``, ``restart`` or ``stop`` a context; a refusal raises
        ``CommandFailedError`` (``context_not_found`` when the sandbox lost it)."""
        raise ContextsUnsupportedError()

    async def aclose(self) -> None:  # noqa: B027 - drivers without resources need nothing
        """Release what the driver holds (not the container)."""

    @property
    def hosts_contexts(self) -> bool:
        """Whether code contexts can run here (the agent hosts them; Docker exec cannot)."""
        return False

    @property
    def alive(self) -> bool:
        """False once the driver knows its container can no longer serve (pool check)."""
        return True
