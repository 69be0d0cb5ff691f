"""A client of the interactive-run doors (RUN.md) for the integration suite: a real WebSocket
that sends JSON messages and keeps every message it receives, in order."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from .client import ALL_FRAMES

__all__ = ["LiveClient", "fetch_samples", "pending_run"]

TIMEOUT = 90.0


class LiveClient:
    def __init__(self, websocket: ClientConnection) -> None:
        self.websocket = websocket
        self.messages: list[dict[str, Any]] = []
        self.closed = asyncio.Event()
        self._arrived = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, url: str, **kwargs: Any) -> LiveClient:
        websocket = await connect(url, max_size=None, **kwargs)
        return cls(websocket)

    async def _read(self) -> None:
        try:
            async for frame in self.websocket:
                assert isinstance(frame, str), "the server sent a binary frame"
                ALL_FRAMES.append(frame)
                self.messages.append(json.loads(frame))
                self._arrived.set()
        except ConnectionClosed:
            pass
        finally:
            self.closed.set()
            self._arrived.set()

    async def send(self, **message: Any) -> None:
        await self.websocket.send(json.dumps(message))

    async def send_raw(self, frame: str | bytes) -> None:
        await self.websocket.send(frame)

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [message for message in self.messages if message["type"] == kind]

    def text(self, stream: str = "stdout") -> str:
        return "".join(message["data"] for message in self.of(stream))

    async def until(self, predicate: Any, timeout: float = TIMEOUT) -> None:
        """Wait until ``predicate(self)`` holds; fails with what arrived if it never does."""
        deadline = time.monotonic() + timeout
        while not predicate(self):
            if self.closed.is_set() and not predicate(self):
                raise AssertionError(f"closed before the condition held: {self.messages}")
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"condition not met in {timeout:g}s: {self.messages}")
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), left)

    async def until_type(self, kind: str, timeout: float = TIMEOUT) -> dict[str, Any]:
        await self.until(lambda client: client.of(kind), timeout)
        return self.of(kind)[0]

    async def until_closed(self, timeout: float = TIMEOUT) -> list[dict[str, Any]]:
        """Every message, once the server has closed the socket."""
        try:
            await asyncio.wait_for(self.closed.wait(), timeout)
        except TimeoutError:
            raise AssertionError(f"still open after {timeout:g}s: {self.messages}") from None
        return self.messages

    async def close(self) -> None:
        await self.websocket.close()
        await self._reader


async def fetch_samples(http_url: str) -> dict[str, str]:
    """Each language's sample program, as the playground gets them."""
    async with httpx.AsyncClient(trust_env=False) as http:
        response = await http.get(f"{http_url}/api/v1/languages")
    response.raise_for_status()
    return {entry["name"]: entry["sample"] for entry in response.json()["languages"]}


async def pending_run(http_url: str, **body: Any) -> str:
    """``POST /session``: the id of a pending run (framing B)."""
    async with httpx.AsyncClient(trust_env=False) as http:
        response = await http.post(f"{http_url}/session", json=body)
    assert response.status_code == 201, response.text
    session_id: str = response.json()["sessionId"]
    return session_id
