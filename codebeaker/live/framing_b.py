"""Framing B (RUN.md, seed 004): ``POST /session`` makes a pending run (a REST route), and
``GET /ws/session/{sessionId}`` starts it on connect.

Server → client: ``stdout``/``stderr`` (flushed at most every 40 ms) and ``{"type": "exit",
"code": N}`` last, then the server closes. Client → server: ``input`` (and, as on ``/ws``,
``eof`` and ``kill``). A compile failure is the compiler's output on ``stderr`` and its exit
code; this framing has no compile messages. An unknown or used id is a 404 before the upgrade.
"""

from __future__ import annotations

from codebeaker_client.models import CompileResult
from starlette.websockets import WebSocket

from codebeaker.api.live import CodeMessage, ErrorMessage, ExitCodeMessage
from codebeaker.auth import POLICY_VIOLATION, tenant_of
from codebeaker.exceptions import RunNotFoundError
from codebeaker.live.socket import LiveSocket
from codebeaker.rest.problems import problem_response
from codebeaker.sessions import LiveSpec, RunEnd

__all__ = ["pending_run_socket"]


async def pending_run_socket(websocket: WebSocket) -> None:
    try:
        spec = websocket.app.state.service.claim_pending_run(
            websocket.path_params["sessionId"], tenant=tenant_of(websocket.scope)
        )
    except RunNotFoundError as exc:
        if "websocket.http.response" in websocket.scope.get("extensions", {}):
            await websocket.send_denial_response(problem_response(exc))
        else:  # a server without the denial extension: a refused handshake (403)
            await websocket.close(POLICY_VIOLATION)
        return
    await websocket.accept()
    await PendingRunSocket(websocket).serve(spec)


class PendingRunSocket(LiveSocket):
    ROUTE = "/ws/session/{sessionId}"

    # RunListener (with LiveSocket.output)
    def compiled(self, result: CompileResult) -> None:
        if result.stdout or result.stderr:
            self.outbox.output("stderr", (result.stdout + result.stderr).encode())

    def ending(self, end: RunEnd) -> ExitCodeMessage:
        return ExitCodeMessage(code=end.exit_code)

    async def serve(self, spec: LiveSpec) -> None:
        try:
            if not self.begin(lambda: self.service.start_run(spec, self), spec.runtime.name):
                await self.close()
                return
            while (text := await self.receive_text()) is not None:
                message = self.parse(text) if text else None
                if isinstance(message, CodeMessage):
                    self.outbox.message(ErrorMessage(data="code: this run's code was posted"))
                elif message is not None:
                    self.control(message, echo=False)
        finally:
            await self.finished()
