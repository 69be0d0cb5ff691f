"""The agent driver: one long-lived agent per container, spoken to in frames.

The agent (``agent.py``, baked into every image) is started with a single Docker exec as
root; every command after that is a fork inside the container, not an exec, so a command
costs about a millisecond. Should the agent die anyway (the OOM killer, an operator), the
command in flight fails with ``agent_lost``, its processes are killed by a fresh agent,
and the session goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import secrets
import time
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from loguru import logger

from codebeaker.constants import AGENT_PATH, AGENT_USER, EXIT_KILLED
from codebeaker.exceptions import CommandFailedError, SandboxError
from codebeaker.metrics import AGENT_RESTARTS
from codebeaker.sandbox.docker import AttachedExec, DockerBackend
from codebeaker.sandbox.driver import (
    CellRequest,
    CellResult,
    Display,
    DisplaySink,
    Driver,
    OutputBuffer,
    OutputSink,
    ProcessRequest,
    ProcessResult,
    StdinPipe,
    finished,
)
from codebeaker.sandbox.frames import Header, decode, encode
from codebeaker.sandbox.kernels import DISPLAY_COST, capped_error

__all__ = ["AgentDriver", "AgentUnavailableError"]

AGENT_ARGV = ("python3", "-I", "-S", AGENT_PATH)  # isolated: no PYTHON* env, no site
READY_TIMEOUT = 15.0
REPLY_TIMEOUT = 60.0
GRACE = 10.0  # past a command's own timeout, the agent is considered stuck
GONE_CHECKS, GONE_CHECK_SECONDS = 5, 0.2  # after a failed start: is the container going?
LOST = "agent_lost"
LOST_FRAME: Header = {"t": "lost"}
CELL_STATUSES = ("ok", "error", "interrupted", "timeout")
EXIT_CANNOT_RUN = 126

Handler = Callable[[Header, bytes], None]


class AgentUnavailableError(SandboxError):
    """This container cannot host the agent (no python3, no CAP_SETUID, ...)."""


class AgentLink:
    """One agent process: frames out, frames routed back to whoever asked by ``id``.

    Frames go out through one writer task, in the order they were sent. No caller ever
    waits on the stream's drain itself: aiohttp shares one drain future among all writers
    of a connection, and a caller cancelled while waiting on it (a command's stdin feeder,
    when the command ends) would cancel it for every later writer, whose requests then
    vanish with a ``CancelledError``. A cancelled caller only stops waiting for its own
    frame; the frame is written whole or, if not taken yet, not at all.
    """

    def __init__(self, attached: AttachedExec) -> None:
        self._attached = attached
        self._ids = itertools.count(1)
        self._handlers: dict[int, Handler] = {}
        self._ready: asyncio.Future[Header] = asyncio.get_running_loop().create_future()
        # A link that ends before anyone waits for it (its run was killed meanwhile) fails
        # the future with nobody to read it: read it here, so it is not logged as lost.
        self._ready.add_done_callback(_retrieved)
        self._outbox: asyncio.Queue[tuple[bytes, asyncio.Future[None]]] = asyncio.Queue()
        """Frames to write; each sender waits for its own, so it holds one per sender."""
        self.window: int | None = None
        """How much stdin the agent holds for one command (its ``ready`` says); None: an
        agent without flow control, sent input as it comes."""
        self._reader = asyncio.create_task(self._read())
        self._writer = asyncio.create_task(self._write())

    @property
    def closed(self) -> bool:
        return self._reader.done()

    @property
    def stderr(self) -> str:
        return self._attached.stderr_tail.decode(errors="replace").strip()

    async def _read(self) -> None:
        buffer = bytearray()
        try:
            while (chunk := await self._attached.read()) is not None:
                buffer += chunk
                for header, body in decode(buffer):
                    if header.get("t") == "ready" and not self._ready.done():
                        self._ready.set_result(header)
                    elif (handler := self._handlers.get(header.get("id", 0))) is not None:
                        handler(header, body)
        finally:
            if not self._ready.done():
                self._ready.set_exception(SandboxError("the agent ended before it was ready"))
            for handler in list(self._handlers.values()):
                handler(LOST_FRAME, b"")

    async def _write(self) -> None:
        """The only writer of the agent's stdin (see the class): until the stream fails or
        the link is closed; then every frame still waiting fails with ``SandboxError``."""
        failure = SandboxError("the agent link is closed")
        written: asyncio.Future[None] | None = None
        try:
            while True:
                data, written = await self._outbox.get()
                if written.done():  # its sender gave up before it was taken
                    continue
                await self._attached.write(data)
                if not written.done():
                    written.set_result(None)
        except SandboxError as exc:
            failure = exc
        finally:
            waiting = [written] if written is not None else []
            while not self._outbox.empty():
                waiting.append(self._outbox.get_nowait()[1])
            for future in waiting:
                if not future.done():
                    future.set_exception(failure)

    async def ready(self, timeout: float) -> Header:
        ready = await asyncio.wait_for(asyncio.shield(self._ready), timeout)
        window = ready.get("window")
        self.window = int(window) if window else None
        return ready

    def open(self, handler: Handler) -> int:
        """A new request id whose frames go to ``handler`` (a lost agent sends "lost")."""
        ident = next(self._ids)
        self._handlers[ident] = handler
        if self.closed:
            handler(LOST_FRAME, b"")
        return ident

    def close_request(self, ident: int) -> None:
        self._handlers.pop(ident, None)

    async def send(self, header: Header, body: bytes = b"") -> None:
        """Write one frame; ``SandboxError`` if the agent is gone. Cancelling the wait
        never cuts the frame nor harms another sender's."""
        if self._writer.done():
            raise SandboxError("the agent link is closed")
        written: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        written.add_done_callback(_retrieved)
        self._outbox.put_nowait((encode(header, body), written))
        await written

    async def request(self, header: Header, timeout: float) -> Header:
        """One frame out, its reply back; ``{"t": "lost"}`` if the agent died or hung."""
        reply: asyncio.Future[Header] = asyncio.get_running_loop().create_future()

        def answer(frame: Header, body: bytes) -> None:
            if not reply.done():
                reply.set_result(frame)

        ident = self.open(answer)
        try:
            await self.send({**header, "id": ident})
            return await asyncio.wait_for(reply, timeout)
        except (SandboxError, TimeoutError):
            await self.aclose()  # silent or gone: the next call starts a new agent
            return LOST_FRAME
        finally:
            self.close_request(ident)

    async def aclose(self) -> None:
        self._reader.cancel()
        self._writer.cancel()
        await self._attached.aclose()


def _retrieved(future: asyncio.Future[Any]) -> None:
    """Read a future's failure, so one whose waiter left is not logged as never retrieved."""
    if not future.cancelled():
        future.exception()


class Credit:
    """How many more bytes of live stdin the agent takes for one command: its window at
    first, less what was sent, plus what it reports ``taken``. None: no limit."""

    def __init__(self, window: int | None) -> None:
        self._left = window
        self._more = asyncio.Event()

    def grant(self, size: int) -> None:
        if self._left is not None:
            self._left += size
            self._more.set()

    async def take(self) -> int | None:
        """Wait for room; how many bytes may go now (None: any number)."""
        while self._left is not None and self._left <= 0:
            self._more.clear()
            await self._more.wait()
        return self._left

    def spend(self, size: int) -> None:
        if self._left is not None:
            self._left -= size


class AgentDriver(Driver):
    def __init__(self, backend: DockerBackend, container_id: str) -> None:
        super().__init__(container_id)
        self._backend = backend
        self._link: AgentLink | None = None
        self._launching = asyncio.Lock()
        self._markers: dict[str, str] = {}
        """Each code context's marker: what a new agent kills by when the old one is lost."""

    @property
    def alive(self) -> bool:
        return self._link is not None and not self._link.closed

    @property
    def hosts_contexts(self) -> bool:
        return True

    async def start(self) -> None:
        await self._agent()

    async def _agent(self) -> AgentLink:
        """The running agent, started (again) if there is none."""
        async with self._launching:
            if self._link is not None and not self._link.closed:
                return self._link
            if self._link is not None:
                AGENT_RESTARTS.inc()
                logger.warning(
                    "agent in {} ended ({}); starting a new one",
                    self.container_id[:12],
                    self._link.stderr[-500:] or "no message",
                )
            attached = await self._backend.attach(
                self.container_id, AGENT_ARGV, user=AGENT_USER, workdir="/"
            )
            link = AgentLink(attached)
            try:
                ready = await link.ready(READY_TIMEOUT)
            except (SandboxError, TimeoutError) as exc:
                await link.aclose()
                await self._unless_gone()
                raise AgentUnavailableError(f"agent did not start: {exc} {link.stderr}") from exc
            if not ready.get("ok"):
                await link.aclose()
                raise AgentUnavailableError(f"agent cannot run here: {ready.get('problem')}")
            self._link = link
            return link

    async def _unless_gone(self) -> None:
        """ContainerGoneError if the agent failed because its container is going away: one
        being removed still reports itself running for a moment after its processes died."""
        for _ in range(GONE_CHECKS - 1):
            await self._backend.ensure_running(self.container_id)
            await asyncio.sleep(GONE_CHECK_SECONDS)
        await self._backend.ensure_running(self.container_id)

    async def run(
        self,
        request: ProcessRequest,
        *,
        on_output: OutputSink | None = None,
        stdin: StdinPipe | None = None,
    ) -> ProcessResult:
        try:
            link = await self._agent()
        except AgentUnavailableError as exc:
            return lost(b"", b"", f"the sandbox agent could not be started ({exc})")
        output = OutputBuffer(request.output_limit, on_output)
        done: asyncio.Future[Header] = asyncio.get_running_loop().create_future()
        credit = Credit(link.window)

        def receive(header: Header, body: bytes) -> None:
            if header["t"] == "out":
                output.feed(int(header["stream"]), body)
            elif header["t"] == "taken":
                credit.grant(int(header["n"]))
            elif not done.done():
                done.set_result(header)

        marker, since = secrets.token_hex(8), time.time()
        ident = link.open(receive)
        frame = {
            "op": "run",
            "id": ident,
            "argv": list(request.argv),
            "cwd": request.workdir,
            "env": dict(request.env),
            "marker": marker,
            "timeout": request.timeout,
            "limit": request.output_limit,
            "stdin": request.stdin is not None,
            "interactive": stdin is not None,
        }
        body = request.stdin or b""
        canceller = None
        if request.cancel is not None:
            canceller = asyncio.create_task(self._cancel_when(request.cancel, link, ident))
        try:
            header = await _exchange(
                link, frame, body, done, stdin, credit, request.timeout + GRACE
            )
        except BaseException:  # our caller was cancelled: the command must not outlive its turn
            await _to_the_end(self._stop(link, ident, done, marker, since))
            raise
        finally:
            link.close_request(ident)
            if canceller is not None:
                canceller.cancel()
        if header["t"] == "lost":
            try:
                await self._recover(link, marker, since)
            except AgentUnavailableError as exc:
                return lost(
                    output.stdout,
                    output.stderr,
                    f"the sandbox agent stopped during the command and could not be restarted "
                    f"({exc}); the next command tries again",
                )
            return lost(
                output.stdout,
                output.stderr,
                "the sandbox agent stopped during the command and was restarted; "
                "the command's processes were killed",
            )
        if header["t"] != "exit":  # refused outright (a frame the agent could not take)
            header = {"code": EXIT_CANNOT_RUN, "error": f"start_failed: {header.get('message')}"}
        if header.get("error"):
            message = str(header["error"])
            return ProcessResult(b"", message.encode() + b"\n", int(header["code"]), error=message)
        timed_out = bool(header.get("timed_out"))
        cancelled = bool(header.get("cancelled"))
        output.overflowed = output.overflowed or bool(header.get("overflowed"))
        code = int(header["code"])
        return finished(request, output, code, timed_out=timed_out, cancelled=cancelled)

    async def _cancel_when(self, cancel: asyncio.Event, link: AgentLink, ident: int) -> None:
        """Once ``cancel`` is set, the agent kills command ``ident``'s tree as at its
        timeout; its exit frame then says ``cancelled``."""
        await cancel.wait()
        reply = await link.request({"op": "cancel", "run": ident}, REPLY_TIMEOUT)
        if reply.get("t") == "reply" and not reply.get("ok"):  # an image older than cancel
            logger.warning(
                "the agent in {} cannot cancel ({}); rebuild the images (codebeaker images build)",
                self.container_id[:12],
                reply.get("message"),
            )

    async def _stop(
        self, link: AgentLink, ident: int, done: asyncio.Future[Header], marker: str, since: float
    ) -> None:
        """End command ``ident`` before its caller lets go of the session's lock: a cancel,
        then its exit awaited. An agent that does not confirm it within ``GRACE`` is
        declared lost, and a new one kills what is left of the command by its marker."""
        if not done.done():
            reply = await link.request({"op": "cancel", "run": ident}, REPLY_TIMEOUT)
            if reply.get("t") != "lost":
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(done), GRACE)
        if not done.done() or done.result().get("t") == "lost":
            try:
                await self._recover(link, marker, since)
            except SandboxError as exc:  # no agent, or no container left to kill in
                logger.warning("agent in {} not restarted: {}", self.container_id[:12], exc)

    async def _recover(self, lost: AgentLink, marker: str, since: float) -> None:
        """A new agent kills what the lost one left running of the command."""
        await lost.aclose()
        link = await self._agent()
        reply = await link.request({"op": "kill", "marker": marker, "since": since}, REPLY_TIMEOUT)
        logger.warning(
            "agent in {} lost a command; its processes were killed ({})",
            self.container_id[:12],
            reply.get("killed", reply.get("t")),
        )

    async def file_op(self, op: str, **params: Any) -> dict[str, Any]:
        return await self._request(op, params)

    async def _request(self, op: str, params: dict[str, Any]) -> dict[str, Any]:
        """One request to the agent and its reply; a refusal or a lost agent raises."""
        try:
            link = await self._agent()
        except AgentUnavailableError as exc:
            raise CommandFailedError(
                LOST, f"the sandbox agent could not be started ({exc})"
            ) from exc
        reply = await link.request({"op": op, **params}, REPLY_TIMEOUT)
        if reply.get("t") == "lost":
            raise CommandFailedError(
                LOST, f"the sandbox agent stopped during {op}; it is restarted on the next call"
            )
        if not reply.get("ok"):
            raise CommandFailedError(reply["kind"], reply["message"])
        return {key: value for key, value in reply.items() if key not in ("ok", "t", "id")}

    # ------------------------------------------------------------------ code contexts

    async def start_context(
        self, name: str, marker: str, cwd: str, env: Mapping[str, str], grace: float
    ) -> int:
        params = {"ctx": name, "marker": marker, "cwd": cwd, "env": dict(env), "grace": grace}
        self._markers[name] = marker
        reply = await self._request("ctx_start", params)
        return int(reply.get("pid", 0))

    async def context_op(self, op: str, name: str) -> dict[str, Any]:
        if op == "stop":
            self._markers.pop(name, None)
        return await self._request(f"ctx_{op}", {"ctx": name})

    async def run_cell(
        self,
        name: str,
        request: CellRequest,
        *,
        on_output: OutputSink | None = None,
        on_display: DisplaySink | None = None,
        stdin: StdinPipe | None = None,
    ) -> CellResult | None:
        try:
            link = await self._agent()
        except AgentUnavailableError as exc:
            return _cell_lost(b"", b"", f"the sandbox agent could not be started ({exc})")
        output = OutputBuffer(request.output_limit, on_output)
        displays: list[Display] = []
        shown = [0]
        done: asyncio.Future[Header] = asyncio.get_running_loop().create_future()

        def receive(header: Header, body: bytes) -> None:
            kind = header["t"]
            if kind == "out":
                output.feed(int(header["stream"]), body)
            elif kind == "display":
                display = _display(header, body)
                shown[0] += len(body) + DISPLAY_COST
                if display is None or shown[0] > request.cell_limit:
                    output.overflowed = True
                    return
                displays.append(display)
                if on_display is not None:
                    on_display(display)
            elif not done.done():
                done.set_result(header)

        ident = link.open(receive)
        frame: Header = {
            "op": "ctx_run",
            "id": ident,
            "ctx": name,
            "timeout": request.timeout,
            "limit": request.output_limit,
            "item_limit": request.item_limit,
            "cell_limit": request.cell_limit,
            "interactive": stdin is not None,
        }
        body = request.code.encode("utf-8", errors="surrogatepass")
        # past the deadline: the interrupt's grace, a kill and a new interpreter
        seconds = request.timeout + 2 * GRACE
        try:  # the agent keeps a cell's input itself, within a cap of its own: no credit
            reply = await _exchange(link, frame, body, done, stdin, Credit(None), seconds)
        finally:
            link.close_request(ident)
        if reply["t"] == "lost":
            await self._recover_context(link, name)
            return _cell_lost(output.stdout, output.stderr, "the sandbox agent stopped")
        if reply.get("missing"):
            return None
        if reply["t"] != "cell":  # refused (a cell already runs there)
            raise CommandFailedError(str(reply.get("kind")), str(reply.get("message")))
        status = reply.get("status")
        return CellResult(
            status=status if status in CELL_STATUSES else "error",
            execution_count=int(reply.get("count") or 0),
            stdout=output.stdout,
            stderr=output.stderr,
            displays=displays,
            error=capped_error(reply.get("error"), request.item_limit),
            state_preserved=bool(reply.get("state_preserved")),
            truncated=bool(reply.get("truncated")) or output.overflowed,
        )

    async def _recover_context(self, lost_link: AgentLink, name: str) -> None:
        """A lost agent's idle kernels end with its pipes; a running cell is killed by its
        context's marker. A new agent starts the context again on its next cell."""
        await lost_link.aclose()
        try:
            link = await self._agent()
        except AgentUnavailableError:
            return  # the next call tries again
        marker = self._markers.get(name, "")
        reply = await link.request({"op": "kill", "marker": marker}, REPLY_TIMEOUT)
        logger.warning(
            "agent in {} lost a cell of context {}; its processes were killed ({})",
            self.container_id[:12],
            name,
            reply.get("killed", reply.get("t")),
        )

    async def aclose(self) -> None:
        if self._link is not None:
            await self._link.aclose()
            self._link = None


def _cell_lost(stdout: bytes, stderr: bytes, detail: str) -> CellResult:
    value = f"{detail}; the context starts afresh on its next cell and its state is lost"
    return CellResult(
        status="error",
        execution_count=0,
        stdout=stdout,
        stderr=stderr,
        displays=[],
        error={"name": "ContextLost", "value": value, "traceback": ""},
        state_preserved=False,
        truncated=False,
    )


def _display(header: Header, body: bytes) -> Display | None:
    """A displayed value as the kernel (user code) sent it: only a JSON object is kept."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    truncated = bool(header.get("truncated"))
    return Display("result" if header.get("kind") == "result" else "display", data, truncated)


def lost(stdout: bytes, stderr: bytes, detail: str) -> ProcessResult:
    return ProcessResult(stdout, stderr, EXIT_KILLED, error=f"{LOST}: {detail}")


async def _exchange(
    link: AgentLink,
    frame: Header,
    body: bytes,
    done: asyncio.Future[Header],
    stdin: StdinPipe | None,
    credit: Credit,
    seconds: float,
) -> Header:
    """Send a request whose frames go to the handler opened as its ``id``, pass it live
    input, and wait for its end: ``{"t": "lost"}`` when the agent died or hung."""
    ident = int(frame["id"])
    feeder = asyncio.create_task(_forward(link, ident, stdin, credit)) if stdin else None
    try:
        await link.send(frame, body)
        return await asyncio.wait_for(asyncio.shield(done), seconds)
    except (SandboxError, TimeoutError):
        return LOST_FRAME
    finally:
        if feeder is not None:
            feeder.cancel()


async def _forward(link: AgentLink, ident: int, stdin: StdinPipe, credit: Credit) -> None:
    """Pass ``session.input`` data to the agent until EOF, no faster than its window lets
    it: what the program has not read waits in ``stdin``, which refuses more past its cap.
    A gone agent ends this quietly; the request's own wait reports it."""
    with contextlib.suppress(SandboxError):
        while True:
            chunk = await stdin.read(await credit.take())
            if chunk is not None:
                credit.spend(len(chunk))
            await link.send({"op": "input", "id": ident, "eof": chunk is None}, chunk or b"")
            if chunk is None:
                return


async def _to_the_end(work: Coroutine[Any, Any, None]) -> None:
    """Run ``work`` to its end even when our own task is cancelled meanwhile: a caller
    that holds a session's lock keeps it until the work is done, then goes on with its
    cancellation."""
    task = asyncio.ensure_future(work)
    while not task.done():
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(task)
    task.result()
