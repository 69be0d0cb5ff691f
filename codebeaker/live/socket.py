"""What both interactive-run framings do with their socket: read text frames (with the idle
limit), charge each to the tenant's rate, send through one ordered ``Outbox``, close once,
and wait for their own tasks. A run's start is one line of the audit log."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from codebeaker.api.live import (
    CLIENT_MESSAGE,
    ClientMessage,
    EchoMessage,
    EofMessage,
    ErrorMessage,
    InputMessage,
    KillMessage,
    LiveMessage,
)
from codebeaker.api.wire import parse
from codebeaker.audit import AUDIT
from codebeaker.auth import POLICY_VIOLATION, tenant_of
from codebeaker.errors import describe, error_text
from codebeaker.exceptions import InvalidParamsError, PayloadTooLargeError
from codebeaker.live.outbox import Outbox
from codebeaker.service import SandboxService
from codebeaker.sessions import InteractiveRun, RunEnd

__all__ = ["LiveSocket"]

MIB = 1024 * 1024
NORMAL_CLOSURE = 1000
CLOSE_SECONDS = 2.0  # for the close frame to reach a client that does not read


class LiveSocket:
    ROUTE = ""
    """The socket's path as the audit log names it."""

    def __init__(self, websocket: WebSocket) -> None:
        self.websocket = websocket
        self.service: SandboxService = websocket.app.state.service
        self.tenant = tenant_of(websocket.scope)
        self.outbox = Outbox(self._send)
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self.run: InteractiveRun | None = None

    def output(self, stream: str, data: bytes) -> None:
        """``RunListener``: the program's output, as it arrives."""
        self.outbox.output("stderr" if stream == "stderr" else "stdout", data)

    async def receive_text(self) -> str | None:
        """The next text frame; ``""`` for a frame that was refused (and answered with an
        error); None once the client is gone, has been silent too long, or does not read
        what it is sent (its replies past ``run_input_limit_bytes`` + 1 MiB unsent)."""
        settings = self.service.settings
        if self.outbox.backlog > settings.run_input_limit_bytes + MIB:
            await self._abort()
            return None
        idle = settings.socket_idle_seconds
        try:
            async with asyncio.timeout(idle):
                message = await self.websocket.receive()
        except TimeoutError:
            self.outbox.message(ErrorMessage(data=f"idle: no message for {idle:g}s; closing"))
            await self.close()
            return None
        except (WebSocketDisconnect, RuntimeError):
            return None
        if message["type"] == "websocket.disconnect":
            return None
        text = message.get("text")
        if text is None:
            self.outbox.message(
                ErrorMessage(data="message: binary frames are not accepted; send JSON text")
            )
            return ""
        return str(text)

    def parse(self, text: str) -> ClientMessage | None:
        """The message, or None when it was refused (the client has been told why)."""
        settings = self.service.settings
        try:
            self.tenant.admit()
            if len(text) > settings.max_message_bytes:
                raise PayloadTooLargeError("message", settings.max_message_bytes)
            return parse(CLIENT_MESSAGE, text, settings, json=True)
        except InvalidParamsError as exc:
            # pydantic puts the message's type first in each location: the client knows it
            errors = [{**error, "loc": error["loc"][1:] or error["loc"]} for error in exc.errors]
            self.outbox.message(ErrorMessage(data=error_text(InvalidParamsError(errors))))
            return None
        except Exception as exc:
            self.outbox.message(ErrorMessage(data=error_text(exc)))
            return None

    def control(self, message: InputMessage | EofMessage | KillMessage, *, echo: bool) -> None:
        """``input`` (echoed back when ``echo``), ``eof`` or ``kill`` for the running
        program; anything wrong is an error message and the connection stays."""
        run = self.run
        if run is None:
            text = f"{message.type}: no program runs; send code first"
            self.outbox.message(ErrorMessage(data=text))
            return
        try:
            if isinstance(message, InputMessage):
                run.write(message.data.encode("utf-8", errors="surrogatepass"))
                if echo:
                    self.outbox.message(EchoMessage(data=message.data))
            elif isinstance(message, EofMessage):
                run.close_stdin()
            else:
                run.kill()
        except Exception as exc:
            self.outbox.message(ErrorMessage(data=f"{message.type}: {error_text(exc)}"))

    def begin(self, start: Callable[[], InteractiveRun], language: str) -> bool:
        """Start the connection's run and report its end when it comes; False (the client
        told why) when it cannot start."""
        started = time.monotonic()
        try:
            self.run = start()
        except Exception as exc:
            self._audit(language, describe(exc).data.kind, started)
            self.outbox.message(ErrorMessage(data=error_text(exc)))
            return False
        self._audit(language, "ok", started)
        task = asyncio.create_task(self._report(self.run))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    def _audit(self, language: str, outcome: str, started: float) -> None:
        AUDIT.record(
            tenant=self.tenant.name,
            door="live",
            method=self.ROUTE,
            command=language,
            outcome=outcome,
            started=started,
        )

    def ending(self, end: RunEnd) -> LiveMessage:
        """The framing's last message."""
        raise NotImplementedError

    async def _report(self, run: InteractiveRun) -> None:
        """After the run: its end (or the error that kept it from running), then close."""
        try:
            end = await run.wait()
        except Exception as exc:
            self.outbox.message(ErrorMessage(data=error_text(exc)))
        else:
            self.outbox.message(self.ending(end))
        try:
            await self.close()
        finally:
            run.release()

    async def close(self) -> None:
        """Send what is queued, then close the socket (once)."""
        if self._closed:
            return
        self._closed = True
        await self.outbox.close()
        if self.websocket.application_state is WebSocketState.CONNECTED:
            with contextlib.suppress(RuntimeError, WebSocketDisconnect, OSError):
                await self.websocket.close(NORMAL_CLOSURE)

    async def _abort(self) -> None:
        self._closed = True
        self.outbox.abort()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(CLOSE_SECONDS):
                await self.websocket.close(POLICY_VIOLATION)

    async def finished(self) -> None:
        """The client is gone: its program goes too; let our tasks end, stop the outbox."""
        if self.run is not None:
            self.run.kill()
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        await self.outbox.close()

    async def _send(self, text: str) -> None:
        if (
            self.websocket.client_state is WebSocketState.CONNECTED
            and self.websocket.application_state is WebSocketState.CONNECTED
        ):
            await self.websocket.send_text(text)
