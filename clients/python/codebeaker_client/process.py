"""A command started with ``spawn``: its output as it comes, its stdin, its end."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from codebeaker_client.connection import parse_reply
from codebeaker_client.errors import ConnectionLost, Partial
from codebeaker_client.models.jsonrpc import OutputChunk
from codebeaker_client.results import ExecResult

if TYPE_CHECKING:
    from codebeaker_client.session import AsyncSession

__all__ = ["AsyncProcess"]


class AsyncProcess:
    """``async for chunk in process`` yields ``OutputChunk``s (``.stream``, ``.data``) until the
    command ends; ``wait()`` gives its result. If the connection drops meanwhile, ``wait()``
    raises ``ConnectionLost`` whose ``partial`` holds every chunk that had arrived."""

    def __init__(self, session: AsyncSession, request_id: str) -> None:
        self.session = session
        self.id = request_id
        """The ``requestId`` of its output, and what ``session.cancel`` names."""
        self._chunks: asyncio.Queue[OutputChunk | None] = asyncio.Queue()
        self._stdout: list[str] = []
        self._stderr: list[str] = []
        self._reply: asyncio.Future[dict[str, Any]] | None = None

    def _started(self, reply: asyncio.Future[dict[str, Any]]) -> None:
        self._reply = reply
        reply.add_done_callback(lambda _: self._chunks.put_nowait(None))

    def _listen(self, method: str, params: dict[str, Any]) -> None:
        if method != "session.output":
            return
        chunk = parse_reply(OutputChunk, params)
        (self._stdout if chunk.stream == "stdout" else self._stderr).append(chunk.data)
        self._chunks.put_nowait(chunk)

    @property
    def done(self) -> bool:
        return self._reply is not None and self._reply.done()

    def output_so_far(self) -> Partial:
        """Everything printed so far, whether or not it was iterated."""
        return Partial("".join(self._stdout), "".join(self._stderr))

    def __aiter__(self) -> AsyncProcess:
        return self

    async def __anext__(self) -> OutputChunk:
        """The next chunk; at the end, ``ConnectionLost`` (with ``partial``) if the
        connection dropped, so a cut-short stream never looks like a finished one."""
        chunk = None if self.done and self._chunks.empty() else await self._chunks.get()
        if chunk is not None:
            return chunk
        assert self._reply is not None
        failure = None if self._reply.cancelled() else self._reply.exception()
        if isinstance(failure, ConnectionLost):
            raise failure.with_partial(self.output_so_far())
        raise StopAsyncIteration

    async def wait(self) -> ExecResult:
        """The command's result once it ends (output included, as with ``exec``)."""
        assert self._reply is not None
        try:
            response = await asyncio.shield(self._reply)
        except ConnectionLost as exc:
            raise exc.with_partial(self.output_so_far()) from None
        return self.session._exec_result(response, check=False)

    async def write(self, data: str, *, eof: bool = False) -> int:
        """Send ``data`` to its stdin (then end it, with ``eof``); the number of bytes taken."""
        return await self.session._input(self.id, data, eof=eof)

    async def close_stdin(self) -> None:
        """End its stdin: ``read`` loops and ``sys.stdin.read()`` see EOF."""
        await self.session._input(self.id, "", eof=True)

    async def cancel(self) -> ExecResult:
        """Stop it now, its whole process tree killed; its (cancelled) result."""
        await self.session.cancel(self.id)
        return await self.wait()
