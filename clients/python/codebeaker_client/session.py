"""A sandbox session: commands, processes, files and code contexts in one container."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

from codebeaker_client.connection import parse_reply
from codebeaker_client.errors import (
    ConnectionLost,
    InvalidParams,
    Partial,
    for_command,
    for_rpc_error,
)
from codebeaker_client.files import AsyncFiles
from codebeaker_client.models.commands import CommandOutcome, ExecuteShell
from codebeaker_client.models.contexts import (
    ContextClosed,
    ContextInfo,
    ContextList,
    ContextRef,
    CreateContextRequest,
    DisplayData,
    InterruptResult,
    RunCodeRequest,
    RunCodeResult,
)
from codebeaker_client.models.errors import FieldError
from codebeaker_client.models.jsonrpc import OutputChunk
from codebeaker_client.models.requests import (
    CancelRequest,
    ExecuteRequest,
    InputRequest,
    SessionRef,
)
from codebeaker_client.models.results import CancelResult, CloseResult, InputResult
from codebeaker_client.params import build
from codebeaker_client.process import AsyncProcess
from codebeaker_client.results import ExecResult, Execution, Result

if TYPE_CHECKING:
    from codebeaker_client.connection import Connection

__all__ = ["AsyncContexts", "AsyncSession", "Cmd"]

Cmd = str | Sequence[str]
"""A string runs through ``sh -c``; a sequence is the argv itself, no shell."""
DEFAULT_CONTEXT = "default"


def shell_command(
    cmd: Cmd,
    cwd: str | None,
    env: Mapping[str, str] | None,
    stdin: str | None,
    timeout: float | None,
) -> ExecuteShell:
    argv = ["sh", "-c", cmd] if isinstance(cmd, str) else list(cmd)
    if not argv:
        empty = FieldError(loc=["cmd"], msg="an empty argv", type="too_short")
        raise InvalidParams("Invalid params: cmd: an empty argv", [empty])
    fields: dict[str, Any] = {"type": "execute_shell", "command_name": argv[0], "args": argv[1:]}
    if cwd is not None:
        fields["working_directory"] = cwd
    return build(ExecuteShell, **fields, env=dict(env or {}), stdin=stdin, timeout_seconds=timeout)


class AsyncSession:
    """One long-lived sandbox. ``async with`` closes it at the end unless ``detach()`` was
    called; ``get_session(id)`` reattaches to it from any client."""

    def __init__(self, connection: Connection, session_id: str, language: str) -> None:
        self._connection = connection
        self.id = session_id
        self.language = language
        self.files = AsyncFiles(self)
        self.contexts = AsyncContexts(self)
        self._detached = False

    def __repr__(self) -> str:
        return f"<AsyncSession {self.id} {self.language}>"

    async def __aenter__(self) -> AsyncSession:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if not self._detached:
            await self.close()

    def detach(self) -> str:
        """Leave the session running when the ``with`` block ends; its id, to reattach."""
        self._detached = True
        return self.id

    async def close(self) -> None:
        """End the session and remove its container (a closed or expired one is fine)."""
        ref = build(SessionRef, session_id=self.id)
        response = await self._connection.exchange("session.close", ref)
        error = response.get("error")
        if error is not None:
            raised = for_rpc_error(error)
            if raised.kind not in ("session_not_found", "session_terminated"):
                raise raised
            return
        parse_reply(CloseResult, response.get("result"))

    # -- commands ------------------------------------------------------------------------

    async def _execute(self, command: Any) -> CommandOutcome:
        request = build(ExecuteRequest, session_id=self.id, command=command)
        return await self._connection.request("session.execute", request, CommandOutcome)

    def _exec_result(self, response: dict[str, Any], *, check: bool) -> ExecResult:
        if "error" in response:
            raise for_rpc_error(response["error"])
        return self._checked(parse_reply(CommandOutcome, response.get("result")), check)

    @staticmethod
    def _checked(outcome: CommandOutcome, check: bool) -> ExecResult:
        if outcome.result is None:
            if outcome.error is not None and outcome.error.startswith("cancelled:"):
                return ExecResult.never_started(outcome)
            raise for_command(outcome.error or "start_failed: no result")
        result = ExecResult.from_outcome(outcome)
        if check and not result.ok:
            raise for_command(outcome.error or f"nonzero_exit: exit {result.exit_code}", result)
        return result

    async def exec(
        self,
        cmd: Cmd,
        *,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        stdin: str | None = None,
        timeout: float | None = None,
        check: bool = False,
    ) -> ExecResult:
        """Run a command to its end. A non-zero exit, a timeout or a flood is a result
        (``ok`` is False); with ``check=True`` it raises ``CommandFailed``/``CommandTimeout``."""
        command = shell_command(cmd, cwd, env, stdin, timeout)
        return self._checked(await self._execute(command), check)

    async def spawn(
        self,
        cmd: Cmd,
        *,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        stdin: str | None = None,
        timeout: float | None = None,
    ) -> AsyncProcess:
        """Start a command and return at once: stream its output, write its stdin."""
        command = shell_command(cmd, cwd, env, stdin, timeout)
        request = build(ExecuteRequest, session_id=self.id, command=command, stream=True)
        process = AsyncProcess(self, self._connection.unique_id())
        reply = await self._connection.start(
            "session.execute", request, request_id=process.id, listener=process._listen
        )
        process._started(reply)
        return process

    async def _input(self, request_id: int | str, data: str, *, eof: bool) -> int:
        request = build(InputRequest, session_id=self.id, request_id=request_id, data=data, eof=eof)
        result = await self._connection.request("session.input", request, InputResult)
        return result.bytes

    async def cancel(self, request_id: int | str | None = None) -> list[int | str]:
        """Stop the session's running command (or the one of ``request_id``, running or
        queued) now; the ids of the commands stopped."""
        request = build(CancelRequest, session_id=self.id, request_id=request_id)
        result = await self._connection.request("session.cancel", request, CancelResult)
        return list(result.cancelled)

    # -- code ----------------------------------------------------------------------------

    async def run_code(
        self,
        code: str,
        *,
        context: str | None = None,
        timeout: float | None = None,
        on_output: Callable[[OutputChunk], None] | None = None,
        on_result: Callable[[Result], None] | None = None,
    ) -> Execution:
        """Run Python in a context that keeps its state between calls (``"default"`` unless
        ``context`` names another). ``on_output``/``on_result`` hear output and displays
        while the cell runs. An exception in the cell is ``.error``, not raised."""
        stream = on_output is not None or on_result is not None
        request = build(
            RunCodeRequest,
            session_id=self.id,
            code=code,
            context_id=context,
            timeout_seconds=timeout,
            stream=stream,
        )

        heard: dict[str, list[str]] = {"stdout": [], "stderr": []}

        def listen(method: str, params: dict[str, Any]) -> None:
            if method == "session.output":
                chunk = parse_reply(OutputChunk, params)
                heard[chunk.stream].append(chunk.data)
                if on_output is not None:
                    on_output(chunk)
            elif method == "session.display" and on_result is not None:
                on_result(Result.from_wire(parse_reply(DisplayData, params.get("result"))))

        try:
            result = await self._connection.request(
                "session.run_code",
                request,
                RunCodeResult,
                request_id=self._connection.unique_id(),
                listener=listen if stream else None,
            )
        except ConnectionLost as exc:  # what a streamed cell printed is not lost with it
            partial = Partial("".join(heard["stdout"]), "".join(heard["stderr"]))
            raise exc.with_partial(partial) from None
        return Execution.from_wire(result)

    async def interrupt(self, context: str = DEFAULT_CONTEXT) -> bool:
        """Interrupt the context's running cell (its state kept); whether one was running."""
        ref = build(ContextRef, session_id=self.id, context_id=context)
        result = await self._connection.request("session.interrupt", ref, InterruptResult)
        return result.interrupted


class AsyncContexts:
    """The session's code contexts: each its own Python interpreter with its own state."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def create(
        self, *, cwd: str | None = None, env: Mapping[str, str] | None = None
    ) -> ContextInfo:
        request = build(
            CreateContextRequest, session_id=self._session.id, cwd=cwd, env=dict(env or {})
        )
        return await self._session._connection.request("context.create", request, ContextInfo)

    async def list(self) -> list[ContextInfo]:
        ref = build(SessionRef, session_id=self._session.id)
        result = await self._session._connection.request("context.list", ref, ContextList)
        return result.contexts

    async def restart(self, context: str) -> ContextInfo:
        """A fresh interpreter under the same id: its state is gone."""
        ref = build(ContextRef, session_id=self._session.id, context_id=context)
        return await self._session._connection.request("context.restart", ref, ContextInfo)

    async def close(self, context: str) -> None:
        ref = build(ContextRef, session_id=self._session.id, context_id=context)
        await self._session._connection.request("context.close", ref, ContextClosed)
