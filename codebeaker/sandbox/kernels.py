"""The agent's code contexts: one kernel process (kernel.py) per context, spoken to in
frames over its own pair of pipes, its stdout and stderr read as the running cell's output.

The agent owns the cell's clock: at its deadline the kernel gets SIGINT (KeyboardInterrupt,
state kept); a kernel that has not answered ``grace`` seconds later is killed with its
whole tree and started again, and the result says the state is lost. A kernel that dies
for any reason (``os._exit``, a segfault, the memory limit) is started again the same way.
The kernel runs user code, so everything it sends is bounded and checked here.

Server to agent (``op``):
    ctx_start    ctx, marker, cwd, env, grace: reply once the kernel is ready
    ctx_run      ctx, timeout, limit (per stream), item_limit, cell_limit, interactive;
                 body: the code. Frames back: out, display, then cell
    ctx_interrupt, ctx_restart, ctx_stop   ctx: reply (restart: once ready again)
Agent to server:
    display      kind, truncated; body: a JSON MIME bundle
    cell         status, count, error, state_preserved, truncated
"""

from __future__ import annotations

import contextlib
import math
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Protocol

try:
    from codebeaker.sandbox import guest
    from codebeaker.sandbox.frames import (
        Header,
        decode,
        encode,
        read_ready,
        write_ready,
    )
except ImportError:  # in the image: beside this file, no package
    import guest  # type: ignore[import-not-found, no-redef]
    from frames import (  # type: ignore[import-not-found, no-redef]
        Header,
        decode,
        encode,
        read_ready,
        write_ready,
    )

KERNEL_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kernel.py")
CHUNK = 64 * 1024
MAX_KERNEL_FRAME = 64 << 20  # a display past the cell's limit is dropped before this
MAX_CELL_INPUT = 16 << 20  # input waiting for a cell that does not read
TAIL = 4096  # stderr kept from a kernel between cells: why it failed to start
MAX_OUTBOX = 16 << 20  # the code of a cell and the answers a kernel has not read yet
DISPLAY_COST = 1024  # what one display costs the server beside its bytes (both count it)
START_SECONDS = 30.0  # a kernel not ready by then is killed: its start failed
MAX_START_FAILURES = 3  # a kernel that dies before it is ready this often is given up
ERROR_FIELDS = ("name", "value", "traceback")


class Host(Protocol):
    """What the kernels need of the agent."""

    selector: selectors.BaseSelector
    env: dict[str, str]

    def send(self, header: Header, body: bytes = b"") -> None: ...

    def as_user(self) -> contextlib.AbstractContextManager[None]: ...

    def spawn(
        self, argv: list[str], cwd: str, env: dict[str, str], pass_fds: tuple[int, ...]
    ) -> tuple[subprocess.Popen[bytes], int, int]:
        """The process, and the read ends of its stdout and stderr; raises with
        ``.error`` ("<kind>: <detail>") when it cannot start."""


class Cell:
    def __init__(self, ident: int, header: Header) -> None:
        self.ident = ident
        self.deadline = time.monotonic() + float(header["timeout"])
        self.limit = int(header["limit"])
        self.cell_limit = int(header["cell_limit"])
        self.item_limit = int(header["item_limit"])
        self.sizes = {1: 0, 2: 0}
        self.shown = 0
        self.truncated = False
        self.reason: str | None = None  # "timeout" or "interrupted", once signalled
        self.grace_until = math.inf
        self.killed = False
        self.exit_error: Header | None = None  # sys.exit: the error the kernel reported
        self.input = bytearray()
        self.input_eof = not header.get("interactive")
        self.wants: int | None = None  # the kernel's read request, by cell count


class Kernel:
    """One context's interpreter, alive or being started again."""

    def __init__(self, name: str, header: Header) -> None:
        self.name = name
        self.cwd = str(header["cwd"])
        self.env = {str(key): str(value) for key, value in (header.get("env") or {}).items()}
        self.grace = float(header["grace"])
        self.marker = str(header["marker"])  # the server's: a new agent can kill by it
        self.process: subprocess.Popen[bytes] | None = None
        self.pidfd = -1
        self.to_kernel = -1
        self.from_kernel = -1
        self.outputs: dict[int, int] = {}
        self.inbox = bytearray()
        self.outbox = bytearray()
        self.ready = False
        self.waiters: list[int] = []  # start/restart/stop requests answered when it settles
        self.cell: Cell | None = None
        self.queued: tuple[int, Header, bytes] | None = None  # a run that came while starting
        self.stopping = False
        self.restarting = False  # killed on request: started again, not a failed start
        self.failures = 0  # deaths before ready, in a row
        self.start_deadline = math.inf
        self.state_lost = False  # died between cells: the next cell starts afresh
        self.tail = bytearray()

    @property
    def pid(self) -> int:
        return self.process.pid if self.process is not None else 0


class Kernels:
    def __init__(self, host: Host) -> None:
        self.host = host
        self.kernels: dict[str, Kernel] = {}

    # ------------------------------------------------------------------ requests

    def handle(self, op: str, ident: int, header: Header, body: bytes) -> None:
        name = str(header["ctx"])
        if op == "ctx_start":
            if name in self.kernels:
                self.reply(ident, False, "context_exists", name)
                return
            fresh = Kernel(name, header)
            self.kernels[name] = fresh
            fresh.waiters.append(ident)
            self.start(fresh)
            return
        kernel = self.kernels.get(name)
        if kernel is None:
            if op == "ctx_run":
                self.host.send({"t": "cell", "id": ident, "missing": True})
            else:
                self.reply(ident, False, "context_not_found", name)
            return
        if op == "ctx_run":
            if kernel.cell is not None or kernel.queued is not None:
                self.reply(ident, False, "busy", f"context {name} is running a cell")
            elif kernel.ready:
                self.run(kernel, ident, header, body)
            else:
                kernel.queued = (ident, header, body)
        elif op == "ctx_interrupt":
            running = kernel.cell is not None
            if running:
                self.interrupt(kernel, "interrupted")
            self.host.send({"t": "reply", "id": ident, "ok": True, "interrupted": running})
        elif op in ("ctx_restart", "ctx_stop"):
            kernel.waiters.append(ident)
            if op == "ctx_stop":  # the name is free at once: a new context may take it
                kernel.stopping = True
                del self.kernels[name]
            else:
                kernel.restarting = True
            if kernel.cell is not None and kernel.cell.reason is None:
                kernel.cell.reason = "interrupted"
            self.kill(kernel)
        else:
            raise ValueError(f"unknown op {op!r}")

    def reply(self, ident: int, ok: bool, kind: str = "", message: str = "") -> None:
        self.host.send({"t": "reply", "id": ident, "ok": ok, "kind": kind, "message": message})

    def feed(self, ident: int, data: bytes, eof: bool) -> bool:
        """``session.input`` for the cell ``ident``; False when no cell has that id."""
        for kernel in self.kernels.values():
            cell = kernel.cell
            if cell is not None and cell.ident == ident:
                if not cell.input_eof:
                    cell.input += data[: max(MAX_CELL_INPUT - len(cell.input), 0)]
                    cell.input_eof = eof
                self.answer_read(kernel)
                return True
        return False

    def pids(self) -> list[int]:
        return [kernel.pid for kernel in self.kernels.values() if kernel.pid]

    def deadlines(self) -> Iterator[float]:
        for kernel in self.kernels.values():
            if not kernel.ready:
                yield kernel.start_deadline
            if kernel.cell is not None:
                yield min(kernel.cell.deadline, kernel.cell.grace_until)

    def enforce(self) -> None:
        now = time.monotonic()
        for kernel in list(self.kernels.values()):
            if not kernel.ready and now >= kernel.start_deadline:
                kernel.start_deadline = math.inf
                self.kill(kernel)  # hung while starting: counted as a failed start
            cell = kernel.cell
            if cell is None:
                continue
            if now >= cell.deadline:
                self.interrupt(kernel, "timeout")
            elif now >= cell.grace_until and not cell.killed:
                cell.killed = True
                self.kill(kernel)

    def stop_all(self) -> None:
        """The server let go: every kernel goes, none comes back."""
        for kernel in self.kernels.values():
            kernel.stopping = True
            self.kill(kernel)

    # ------------------------------------------------------------------ life and death

    def start(self, kernel: Kernel) -> None:
        to_read, to_write = os.pipe()
        from_read, from_write = os.pipe()
        env = {**self.host.env, **kernel.env, guest.MARKER_ENV: kernel.marker}
        argv = [sys.executable, "-u", KERNEL_PATH, str(to_read), str(from_write)]
        try:
            process, out, err = self.host.spawn(argv, kernel.cwd, env, (to_read, from_write))
        except Exception as exc:  # reported to whoever waits, with its reason
            os.close(to_write)
            os.close(from_read)
            kind, _, detail = str(getattr(exc, "error", f"start_failed: {exc}")).partition(": ")
            self.forget(kernel, kind, detail)
            return
        finally:
            os.close(to_read)
            os.close(from_write)
        kernel.process = process
        kernel.pidfd = os.pidfd_open(process.pid)
        kernel.to_kernel, kernel.from_kernel = to_write, from_read
        kernel.outputs = {out: 1, err: 2}
        kernel.inbox.clear()
        kernel.outbox.clear()
        kernel.tail.clear()
        kernel.ready = False
        kernel.start_deadline = time.monotonic() + START_SECONDS
        selector = self.host.selector
        os.set_blocking(to_write, False)
        os.set_blocking(from_read, False)
        selector.register(from_read, selectors.EVENT_READ, lambda: self.on_frames(kernel))
        for fd in kernel.outputs:
            os.set_blocking(fd, False)
            selector.register(fd, selectors.EVENT_READ, self.output_reader(kernel, fd))
        selector.register(kernel.pidfd, selectors.EVENT_READ, lambda: self.on_exit(kernel))

    def forget(self, kernel: Kernel, kind: str, message: str) -> None:
        """The context is gone for good: whoever waits hears why."""
        if self.kernels.get(kernel.name) is kernel:
            del self.kernels[kernel.name]
        for ident in kernel.waiters:
            self.reply(ident, kind == "", kind, message)
        kernel.waiters.clear()
        if kernel.queued is not None:
            self.host.send({"t": "cell", "id": kernel.queued[0], "missing": True})
            kernel.queued = None

    def kill(self, kernel: Kernel) -> None:
        """The kernel and every process of its tree, frozen first so that none is handed
        to init meanwhile; ``on_exit`` follows."""
        if kernel.process is None:
            return
        with self.host.as_user():
            guest.op_kill({"marker": kernel.marker, "root": kernel.pid})
            with contextlib.suppress(OSError):  # not reaped yet: the pid is still its own
                os.kill(kernel.pid, signal.SIGKILL)

    def interrupt(self, kernel: Kernel, reason: str) -> None:
        cell = kernel.cell
        if cell is None or cell.grace_until < math.inf:  # not running, or already told
            return
        cell.reason = cell.reason or reason
        cell.deadline = math.inf
        cell.grace_until = time.monotonic() + kernel.grace
        with self.host.as_user(), contextlib.suppress(OSError):
            os.kill(kernel.pid, signal.SIGINT)

    def on_exit(self, kernel: Kernel) -> None:
        assert kernel.process is not None
        code = kernel.process.wait()
        selector = self.host.selector
        selector.unregister(kernel.pidfd)
        os.close(kernel.pidfd)
        for fd in list(kernel.outputs):
            while fd in kernel.outputs and self.read_output(kernel, fd):
                pass
        for fd in list(kernel.outputs):
            self.close_fd(kernel, fd)
        for fd in (kernel.from_kernel, kernel.to_kernel):
            with contextlib.suppress(KeyError):
                selector.unregister(fd)
            os.close(fd)
        with self.host.as_user():  # what it left running (double forks reparented away)
            guest.op_kill({"marker": kernel.marker})
        kernel.process = None
        cell = kernel.cell
        if cell is not None:
            error = cell.exit_error or _death(code, cell)
            self.finish(kernel, cell.reason or "error", error, preserved=False)
        elif not kernel.stopping and not kernel.waiters:
            kernel.state_lost = True  # died between cells (a thread, the memory limit)
        if kernel.stopping:
            self.forget(kernel, "", "")
            return
        if not kernel.ready and not kernel.restarting:  # it failed to start
            kernel.failures += 1
            if kernel.waiters or kernel.failures >= MAX_START_FAILURES:
                tail = kernel.tail.decode(errors="replace").strip()[-500:]
                detail = f"the interpreter exited with {code} before it was ready: {tail}"
                self.forget(kernel, "start_failed", detail)
                return
        kernel.restarting = False
        self.start(kernel)

    # ------------------------------------------------------------------ frames

    def on_frames(self, kernel: Kernel) -> None:
        try:
            data = os.read(kernel.from_kernel, CHUNK)
        except BlockingIOError:
            return
        if not data:  # closed: the exit follows through the pidfd
            self.host.selector.unregister(kernel.from_kernel)
            return
        kernel.inbox += data
        try:
            for header, body in decode(kernel.inbox, MAX_KERNEL_FRAME):
                self.on_frame(kernel, header, body)
        except Exception:  # the cell wrote into the kernel's channel: it cannot go on
            if kernel.cell is not None:
                kernel.cell.exit_error = {
                    "name": "ContextBroken",
                    "value": "the cell wrote into the context's control channel; "
                    "the context was restarted and its state is lost",
                    "traceback": "",
                }
            self.kill(kernel)

    def on_frame(self, kernel: Kernel, header: Header, body: bytes) -> None:
        kind = header.get("t")
        cell = kernel.cell
        if kind == "ready":
            kernel.ready = True
            kernel.failures = 0
            for ident in kernel.waiters:
                self.host.send({"t": "reply", "id": ident, "ok": True, "pid": kernel.pid})
            kernel.waiters.clear()
            if kernel.queued is not None:
                queued, kernel.queued = kernel.queued, None
                self.run(kernel, *queued)
        elif kind == "display":  # answered even between cells: the kernel waits for it
            self.drain_outputs(kernel)
            if cell is not None:
                self.show(cell, header, body)
            self.write(kernel, encode({"t": "shown", "seq": header.get("seq")}))
        elif cell is None:
            return  # late: the cell it belongs to has ended
        elif kind == "read":
            cell.wants = int(header.get("count") or 0)
            self.answer_read(kernel)
        elif kind == "done":
            self.drain_outputs(kernel)
            error = header.get("error")
            if header.get("exiting"):
                cell.exit_error = error if isinstance(error, dict) else None
                return  # the exit follows
            status = cell.reason or str(header.get("status"))
            self.finish(kernel, status, error, preserved=True, count=header.get("count"))

    def show(self, cell: Cell, header: Header, body: bytes) -> None:
        cost = len(body) + DISPLAY_COST
        if cell.shown + cost > cell.cell_limit:
            cell.truncated = True
            return
        cell.shown += cost
        truncated = bool(header.get("truncated"))
        cell.truncated = cell.truncated or truncated
        frame = {"t": "display", "id": cell.ident, "kind": str(header.get("kind"))}
        self.host.send({**frame, "truncated": truncated}, body)

    def run(self, kernel: Kernel, ident: int, header: Header, body: bytes) -> None:
        cell = kernel.cell = Cell(ident, header)
        item_limit = int(header["item_limit"])
        frame = {"t": "run", "item_limit": item_limit, "interactive": not cell.input_eof}
        self.write(kernel, encode(frame, body))

    def finish(
        self,
        kernel: Kernel,
        status: str,
        error: object,
        *,
        preserved: bool,
        count: object = None,
    ) -> None:
        cell = kernel.cell
        assert cell is not None
        kernel.cell = None
        preserved = preserved and not kernel.state_lost
        kernel.state_lost = False
        self.host.send(
            {
                "t": "cell",
                "id": cell.ident,
                "status": status,
                "count": count if isinstance(count, int) else 0,
                "error": capped_error(error, cell.item_limit),
                "state_preserved": preserved,
                "truncated": cell.truncated,
            }
        )

    def answer_read(self, kernel: Kernel) -> None:
        cell = kernel.cell
        if cell is None or cell.wants is None or not (cell.input or cell.input_eof):
            return
        data = bytes(cell.input[:CHUNK])
        del cell.input[:CHUNK]
        eof = cell.input_eof and not cell.input
        self.write(kernel, encode({"t": "stdin", "count": cell.wants, "eof": eof}, data))
        cell.wants = None

    def write(self, kernel: Kernel, data: bytes) -> None:
        """To the kernel without ever blocking the agent: a cell that stops reading its
        channel only stalls itself."""
        kernel.outbox += data
        if len(kernel.outbox) > MAX_OUTBOX:  # the cell stopped reading its channel
            kernel.outbox.clear()
            self.kill(kernel)
            return
        self.pump(kernel)

    def pump(self, kernel: Kernel) -> None:
        fd = kernel.to_kernel
        if fd < 0 or kernel.process is None:
            return
        write_ready(fd, kernel.outbox, CHUNK)  # a closed channel: the exit follows
        selector = self.host.selector
        registered = fd in selector.get_map()
        if kernel.outbox and not registered:
            selector.register(fd, selectors.EVENT_WRITE, lambda: self.pump(kernel))
        elif not kernel.outbox and registered:
            selector.unregister(fd)

    # ------------------------------------------------------------------ output

    def output_reader(self, kernel: Kernel, fd: int) -> Callable[[], bool]:
        return lambda: self.read_output(kernel, fd)

    def read_output(self, kernel: Kernel, fd: int) -> bool:
        """One chunk to the running cell (dropped past its limit) or, between cells, to
        the tail; False when the pipe is drained."""
        data = read_ready(fd, CHUNK)
        if data is None:
            return False
        if not data:
            self.close_fd(kernel, fd)
            return False
        stream = kernel.outputs[fd]
        cell = kernel.cell
        if cell is None:
            if stream == 2:
                kernel.tail += data
                del kernel.tail[:-TAIL]
            return True
        kept = data[: max(cell.limit - cell.sizes[stream], 0)]
        if len(kept) < len(data):
            cell.truncated = True
        if kept:
            cell.sizes[stream] += len(kept)
            self.host.send({"t": "out", "id": cell.ident, "stream": stream}, kept)
        return True

    def drain_outputs(self, kernel: Kernel) -> None:
        """What the kernel printed before a frame goes out before that frame."""
        for fd in list(kernel.outputs):
            while fd in kernel.outputs and self.read_output(kernel, fd):
                pass

    def close_fd(self, kernel: Kernel, fd: int) -> None:
        self.host.selector.unregister(fd)
        os.close(fd)
        del kernel.outputs[fd]


def capped_error(error: object, limit: int) -> Header | None:
    """The kernel's error as three strings within the item limit: it runs user code."""
    if not isinstance(error, dict):
        return None
    return {field: str(error.get(field) or "")[:limit] for field in ERROR_FIELDS}


def _death(code: int, cell: Cell) -> Header:
    """What the result says when the interpreter died during the cell."""
    lost = "the context was restarted and its state is lost"
    if cell.killed:
        return {
            "name": "ContextKilled",
            "value": f"the cell did not stop after the interrupt, so it was killed; {lost}",
            "traceback": "",
        }
    if cell.reason is not None:  # restarted or closed by request
        value = f"the cell was stopped; {lost}"
        return {"name": "ContextRestarted", "value": value, "traceback": ""}
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
        how = f"was killed by {name}"
        if -code == signal.SIGKILL:
            how += " (most likely the sandbox's memory limit)"
    else:
        how = f"exited with code {code}"
    return {"name": "ContextDied", "value": f"the interpreter {how}; {lost}", "traceback": ""}
