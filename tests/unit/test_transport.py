"""The JSON-RPC connection in process: every request gets one answer, whatever its call does."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from starlette.websockets import WebSocketState

from codebeaker import transport
from codebeaker.service import SandboxService
from codebeaker.settings import Settings


class FakeSocket:
    """Just enough of Starlette's WebSocket: frames in from a list, frames out kept."""

    def __init__(self, frames: list[str]) -> None:
        self._frames = frames
        self.sent: list[str] = []
        self.client_state = WebSocketState.CONNECTED

    async def receive(self) -> dict[str, Any]:
        if self._frames:
            return {"type": "websocket.receive", "text": self._frames.pop(0)}
        await asyncio.sleep(0.05)  # let the answers go out before the client leaves
        return {"type": "websocket.disconnect"}

    async def send_text(self, text: str) -> None:
        self.sent.append(text)


async def test_a_stray_cancellation_inside_a_call_is_still_answered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """aiohttp's shared drain future once leaked a CancelledError out of a command: the
    request must get an internal error, not silence."""

    async def leaks(*args: Any) -> str:
        raise asyncio.CancelledError

    monkeypatch.setattr(transport, "answer", leaks)
    service = SandboxService(Settings(data_dir=tmp_path))
    socket = FakeSocket([json.dumps({"jsonrpc": "2.0", "id": 7, "method": "session.list"})])
    await transport.Connection(socket, service).serve()  # type: ignore[arg-type]
    await asyncio.sleep(0.05)
    assert len(socket.sent) == 1, socket.sent
    reply = json.loads(socket.sent[0])
    assert reply["id"] == 7
    assert reply["error"]["data"]["kind"] == "internal_error"
