"""Framing A (RUN.md, seed 000): ``GET /ws``, one program per connection.

The client sends ``code``, then ``input`` (echoed back), ``eof`` or ``kill``; the server
streams ``stdout``/``stderr``, reports ``compile_success``/``compile_error`` for compiled
languages, sends ``exit`` last and closes. Every bad message is answered with an ``error``
message; a bad ``code`` message also ends the connection, any other does not.
"""

from __future__ import annotations

import json
from typing import Any

from codebeaker_client.models import CompileResult
from starlette.websockets import WebSocket

from codebeaker.api.live import (
    CodeMessage,
    CompileErrorMessage,
    CompileSuccessMessage,
    ErrorMessage,
    ExitMessage,
)
from codebeaker.live.socket import LiveSocket
from codebeaker.sessions import RunEnd

__all__ = ["terminal_socket"]


async def terminal_socket(websocket: WebSocket) -> None:
    await websocket.accept()
    await Terminal(websocket).serve()


class Terminal(LiveSocket):
    """One ``/ws`` connection: its messages in, its run's messages out."""

    ROUTE = "/ws"

    # RunListener (with LiveSocket.output)
    def compiled(self, result: CompileResult) -> None:
        if result.exit_code == 0:
            if result.stderr or result.stdout:  # warnings: shown, then the program runs
                self.outbox.output("stderr", (result.stdout + result.stderr).encode())
            self.outbox.message(CompileSuccessMessage())
        else:  # some compilers (mcs) report errors on stdout: the client gets both
            output = result.stdout + result.stderr
            self.outbox.message(CompileErrorMessage(stderr=output, return_code=result.exit_code))

    async def serve(self) -> None:
        try:
            while (text := await self.receive_text()) is not None:
                if text:
                    await self._handle(text)
        finally:
            await self.finished()

    async def _handle(self, text: str) -> None:
        message = self.parse(text)
        if message is None:
            if self.run is None and _meant_as_code(text):  # a running program goes on
                await self.close()
        elif isinstance(message, CodeMessage):
            await self._start(message)
        else:
            self.control(message, echo=True)

    async def _start(self, message: CodeMessage) -> None:
        if self.run is not None:
            self.outbox.message(
                ErrorMessage(data="busy: a program already runs on this connection")
            )
            return
        if not self.begin(lambda: self.service.start_run(message, self), message.language):
            await self.close()

    def ending(self, end: RunEnd) -> ExitMessage:
        return ExitMessage(return_code=end.exit_code, reason=end.reason)


def _meant_as_code(text: str) -> bool:
    """Whether a message that failed to parse was a ``code`` message (which ends the
    connection) rather than input or something unknown (which does not)."""
    try:
        data: Any = json.loads(text)
    except ValueError:
        return False
    return isinstance(data, dict) and data.get("type") == "code"
