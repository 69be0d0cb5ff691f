"""What the SDK's calls return, on top of the wire models: a shell command's result as one flat
object, and a code cell's results with their MIME data decoded."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from codebeaker_client.models.commands import CommandOutcome, ShellResult
from codebeaker_client.models.contexts import CodeError, DisplayData, RunCodeResult

__all__ = ["CodeError", "ExecResult", "Execution", "Result"]


@dataclass(frozen=True)
class ExecResult:
    """A command that ran: a non-zero exit is a result, not an exception (unless ``check``)."""

    stdout: str
    stderr: str
    exit_code: int
    timed_out: bool
    truncated: bool
    duration_ms: int
    cancelled: bool = False
    error: str | None = None
    """``"<kind>: <detail>"`` when the server counted the command as failed."""

    @property
    def ok(self) -> bool:
        """Exited 0, on its own, with all its output."""
        return self.exit_code == 0 and not (self.timed_out or self.truncated or self.cancelled)

    @classmethod
    def never_started(cls, outcome: CommandOutcome) -> ExecResult:
        """A queued command ``session.cancel`` dropped: no output, exit code -1."""
        return cls("", "", -1, False, False, outcome.duration_ms, True, outcome.error)

    @classmethod
    def from_outcome(cls, outcome: CommandOutcome) -> ExecResult:
        shell = outcome.result
        if not isinstance(shell, ShellResult):
            raise TypeError(f"not a shell result: {outcome!r}")
        return cls(
            stdout=shell.stdout,
            stderr=shell.stderr,
            exit_code=shell.exit_code,
            timed_out=shell.timed_out,
            truncated=shell.truncated,
            duration_ms=outcome.duration_ms,
            cancelled=shell.cancelled,
            error=outcome.error,
        )


@dataclass(frozen=True)
class Result:
    """One rich result of a cell: the last expression's value (``kind == "result"``) or a
    ``display()``/figure, in every MIME type it could be shown as."""

    kind: str
    mime: dict[str, Any]
    truncated: bool = False

    @classmethod
    def from_wire(cls, data: DisplayData) -> Result:
        return cls(kind=data.kind, mime=dict(data.data), truncated=data.truncated)

    def _text(self, mime: str) -> str | None:
        value = self.mime.get(mime)
        return value if isinstance(value, str) else None

    def _bytes(self, mime: str) -> bytes | None:
        value = self.mime.get(mime)
        return base64.b64decode(value) if isinstance(value, str) else None

    @property
    def text(self) -> str | None:
        return self._text("text/plain")

    @property
    def html(self) -> str | None:
        return self._text("text/html")

    @property
    def markdown(self) -> str | None:
        return self._text("text/markdown")

    @property
    def latex(self) -> str | None:
        return self._text("text/latex")

    @property
    def svg(self) -> str | None:
        return self._text("image/svg+xml")

    @property
    def png(self) -> bytes | None:
        return self._bytes("image/png")

    @property
    def jpeg(self) -> bytes | None:
        return self._bytes("image/jpeg")

    @property
    def json(self) -> Any:
        return self.mime.get("application/json")


@dataclass(frozen=True)
class Execution:
    """A cell that ran in a context: its output, rich results and error, if any."""

    context_id: str
    status: str
    """``ok``, ``error``, ``timeout`` or ``interrupted``."""
    execution_count: int
    stdout: str
    stderr: str
    results: list[Result]
    error: CodeError | None
    state_preserved: bool
    duration_ms: int
    truncated: bool

    @classmethod
    def from_wire(cls, result: RunCodeResult) -> Execution:
        return cls(
            context_id=result.context_id,
            status=result.status,
            execution_count=result.execution_count,
            stdout=result.stdout,
            stderr=result.stderr,
            results=[Result.from_wire(item) for item in result.results],
            error=result.error,
            state_preserved=result.state_preserved,
            duration_ms=result.duration_ms,
            truncated=result.truncated,
        )

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def text(self) -> str | None:
        """The last expression's ``text/plain``, as a REPL would show it; None without one."""
        for result in reversed(self.results):
            if result.kind == "result":
                return result.text
        return None
