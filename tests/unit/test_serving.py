"""Start-up descriptor limit, the guarded protocol's configuration, and its deadlines on a
real uvicorn server in this process (the connection cap and slowloris are exercised against
a real CodeBeaker server in tests/integration/test_hostile_transport.py)."""

from __future__ import annotations

import asyncio
import contextlib
import resource
import socket
from collections.abc import AsyncIterator

import uvicorn
from starlette.types import Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from codebeaker.serving import (
    WRITE_STALL_SECONDS,
    GuardedHttpProtocol,
    guarded_http,
    raise_nofile,
)


def test_nofile_is_raised_to_the_hard_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, 256), hard))
    assert raise_nofile(64) == resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if hard != resource.RLIM_INFINITY:
        assert resource.getrlimit(resource.RLIMIT_NOFILE) == (hard, hard)


def test_each_server_gets_its_own_bounds() -> None:
    small, large = guarded_http(5, 1.5, 3), guarded_http(1000, 10)
    assert issubclass(small, GuardedHttpProtocol)
    assert issubclass(small, HttpToolsProtocol)
    assert (small.max_connections, small.handshake_timeout) == (5, 1.5)
    assert small.write_stall_timeout == 3
    assert (large.max_connections, large.handshake_timeout) == (1000, 10)
    assert large.write_stall_timeout == WRITE_STALL_SECONDS


BIG = b"x" * (16 << 20)
"""Far more than the loopback socket buffers hold: the transport's writing pauses."""


async def _app(scope: Scope, receive: Receive, send: Send) -> None:
    assert scope["type"] == "http"
    body = BIG if scope["path"] == "/big" else b"ok"
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


@contextlib.asynccontextmanager
async def serving(handshake: float, stall: float) -> AsyncIterator[uvicorn.Server]:
    """A real uvicorn server with the guarded protocol, on a free port of this process."""
    config = uvicorn.Config(
        _app,
        host="127.0.0.1",
        port=0,
        http=guarded_http(16, handshake, stall),
        log_config=None,
        timeout_keep_alive=5,  # longer than the deadlines under test
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done()
        await asyncio.sleep(0.01)
    try:
        yield server
    finally:
        server.should_exit = True
        await task


def _port(server: uvicorn.Server) -> int:
    port: int = server.servers[0].sockets[0].getsockname()[1]
    return port


async def _connect(port: int, rcvbuf: int | None = None) -> socket.socket:
    sock = socket.socket()
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    return sock


async def test_bare_crlfs_after_a_request_do_not_hold_the_connection() -> None:
    """Each CRLF cancelled uvicorn's keep-alive timer and started no request: the client
    held its slot forever. Now the first of them has the request deadline."""
    loop = asyncio.get_running_loop()
    async with serving(handshake=0.5, stall=60) as server:
        sock = await _connect(_port(server))
        with sock:
            await loop.sock_sendall(sock, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            reply = await asyncio.wait_for(loop.sock_recv(sock, 4096), 5)
            assert reply.startswith(b"HTTP/1.1 200"), reply
            started = loop.time()
            closed = False
            while loop.time() - started < 3:  # uvicorn's keep-alive alone: open forever
                try:
                    await loop.sock_sendall(sock, b"\r\n")
                    closed = await asyncio.wait_for(loop.sock_recv(sock, 4096), 0.1) == b""
                except TimeoutError:
                    continue
                except OSError:
                    closed = True
                if closed:
                    break
            assert closed, "the trickling connection is still open"
            assert loop.time() - started < 1.5
        assert not server.server_state.connections


async def test_a_client_that_never_reads_is_aborted_after_the_write_stall_deadline() -> None:
    """Pipelined GETs of a large body, nothing read: the response task waited in
    ``drain()`` forever, holding the connection."""
    loop = asyncio.get_running_loop()
    async with serving(handshake=10, stall=1) as server:
        sock = await _connect(_port(server), rcvbuf=1024)
        with sock:
            await loop.sock_sendall(sock, b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n" * 5)
            await asyncio.sleep(0.5)
            assert len(server.server_state.connections) == 1  # writing, stalled
            started = loop.time()
            while server.server_state.connections and loop.time() - started < 5:
                await asyncio.sleep(0.1)
            assert not server.server_state.connections
            assert 0.4 < loop.time() - started < 3
            received = 0
            with contextlib.suppress(ConnectionResetError):
                while chunk := await asyncio.wait_for(loop.sock_recv(sock, 1 << 20), 5):
                    received += len(chunk)
            assert received < len(BIG)  # the rest was dropped, never sent


async def test_a_client_that_reads_slowly_but_steadily_is_served() -> None:
    loop = asyncio.get_running_loop()
    async with serving(handshake=10, stall=0.5) as server:
        sock = await _connect(_port(server), rcvbuf=1 << 16)
        with sock:
            await loop.sock_sendall(sock, b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
            received = 0
            while received < len(BIG):
                chunk = await asyncio.wait_for(loop.sock_recv(sock, 1 << 20), 5)
                assert chunk, f"closed after {received} bytes"
                received += len(chunk)
                await asyncio.sleep(0.001)
