"""CodeBeaker's in-container agent: one per session, it runs its commands and file operations.

The server starts it once, with one Docker exec, and speaks frames over that exec's stdin
and stdout; after that a command costs a fork (about a millisecond), not an exec (about
45 ms). Baked into every image beside guest.py, whose file operations and tree kill it
reuses. Standard library only, for the image's Python 3.11.

It runs as root holding only CAP_SETUID and CAP_SETGID: enough to start each command as the
sandbox user (uid 1000, no capabilities, own session and process group) and to act as that
user (effective uid only) for file operations and kills. User code can neither signal nor
trace it: its real and saved uid stay 0.

Frames, both ways: ``>II`` (header length, body length), a JSON header, the raw body.

Server to agent, each with an ``id``:
    run     argv, cwd, env, marker, timeout, limit, stdin, interactive; body: first stdin
    input   eof; body: more stdin for the running command ``id``, never more than the
            agent's window allows: ``ready`` gives the window, ``taken`` hands it back
    cancel  run: the running command ``run`` gets a timeout's tree kill (session.cancel)
    kill    marker, since: guest.py's tree kill, for a command the server lost track of
    write, read, mkdir, copy, delete, list: guest.py's file operations, as uid 1000
    ctx_*   code contexts: one kernel process each (kernels.py says how)
Agent to server:
    ready   id 0, once at start: whether it can switch to the sandbox user; window (the
            stdin bytes one command may have waiting here: the server sends no more)
    taken   n: bytes of a command's stdin passed to it (or dropped, its input closed):
            that much more of the window is free (credit-based flow control)
    out     stream (1 stdout, 2 stderr); body: output, never past ``limit`` per stream
    exit    code, timed_out, overflowed, cancelled, error ("<kind>: <detail>" when it
            never started)
    reply   guest.py's reply to a file operation or kill; to a cancel: whether it stopped
            a command
    display, cell: a context's results (kernels.py)
"""

from __future__ import annotations

import contextlib
import math
import os
import selectors
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

try:
    from codebeaker.sandbox import guest
    from codebeaker.sandbox.frames import Header, decode, encode, read_ready, write_ready
    from codebeaker.sandbox.kernels import Kernels
except ImportError:  # in the image: /opt/codebeaker/*.py, beside this file, no package
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import guest  # type: ignore[no-redef, import-not-found]
    from frames import (  # type: ignore[no-redef, import-not-found]
        Header,
        decode,
        encode,
        read_ready,
        write_ready,
    )
    from kernels import Kernels  # type: ignore[no-redef, import-not-found]

CHUNK = 64 * 1024
TMP_SEED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tmp-seed")
MAX_ORPHANS = 64  # pipes of finished commands still held by their background processes
SANDBOX_UID = guest.SANDBOX_UID
EXIT_CANNOT_RUN = 126
EXIT_NOT_FOUND = 127
STDIN_WINDOW = 1 << 20
"""stdin held here for one command that has not read it yet; the server waits for
``taken`` frames before it sends more, and anything past the window is dropped."""


@contextlib.contextmanager
def as_sandbox_user() -> Iterator[None]:
    """Act as uid 1000 (effective ids only): its file permissions, its right to signal
    its own processes and read their /proc entries. Real and saved ids stay 0, so user
    code still cannot signal us, and we can switch back."""
    os.setegid(SANDBOX_UID)
    os.seteuid(SANDBOX_UID)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)


def start_failure(exc: OSError, argv0: str) -> tuple[int, str]:
    if isinstance(exc, FileNotFoundError):
        return EXIT_NOT_FOUND, f"command_not_found: {argv0}"
    if isinstance(exc, PermissionError):
        return EXIT_CANNOT_RUN, f"permission_denied: {argv0}"
    return EXIT_CANNOT_RUN, f"start_failed: {argv0}: {exc.strerror or exc}"


def cwd_failure(exc: OSError, cwd: str) -> str:
    kinds = {FileNotFoundError: "file_not_found", NotADirectoryError: "not_a_directory"}
    kind = kinds.get(type(exc), "permission_denied" if isinstance(exc, PermissionError) else "")
    return f"{kind or 'start_failed'}: working directory {cwd}"


def seed_tmp() -> None:
    """Files an image wants in each sandbox's fresh /tmp (python-data: matplotlib's font
    cache), copied there as the sandbox user."""
    if os.path.isdir(TMP_SEED):
        with as_sandbox_user(), contextlib.suppress(OSError):
            shutil.copytree(TMP_SEED, "/tmp", dirs_exist_ok=True)  # noqa: S108 - its own tmpfs


class StartError(Exception):
    def __init__(self, code: int, error: str) -> None:
        super().__init__(error)
        self.code = code
        self.error = error


def spawn(
    argv: list[str],
    cwd: str,
    env: dict[str, str],
    stdin: int,
    stdout: int,
    stderr: int,
    pass_fds: tuple[int, ...] = (),
) -> subprocess.Popen[bytes]:
    """Start ``argv`` as the sandbox user (no capabilities, its own session and process
    group) in ``cwd``, which is checked with the user's rights; ``StartError`` says why
    not. ``stdin`` < 0 means /dev/null."""
    try:
        with as_sandbox_user():
            os.chdir(cwd)
    except OSError as exc:
        raise StartError(EXIT_CANNOT_RUN, cwd_failure(exc, cwd)) from None
    try:
        return subprocess.Popen(
            argv,
            env=env,
            stdin=stdin if stdin >= 0 else subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            user=SANDBOX_UID,
            group=SANDBOX_UID,
            extra_groups=[],
            start_new_session=True,
            pass_fds=pass_fds,
        )
    except OSError as exc:
        raise StartError(*start_failure(exc, argv[0])) from None
    finally:
        os.chdir("/")


class Command:
    """One running command: its process, its pipes and what it has produced so far."""

    def __init__(self, ident: int, header: Header, process: subprocess.Popen[bytes]) -> None:
        self.ident = ident
        self.process = process
        self.marker = str(header["marker"])
        self.anchor = guest.start_ticks(process.pid)
        self.deadline = time.monotonic() + float(header["timeout"])
        self.limit = int(header["limit"])
        self.sizes = {1: 0, 2: 0}
        self.outputs: dict[int, int] = {}  # fd -> stream
        self.stdin_fd: int | None = None
        self.pending = bytearray()
        self.unreported = 0
        """Bytes of ``pending`` that came with ``run``: not counted against the window."""
        self.eof_wanted = False
        self.timed_out = False
        self.overflowed = False
        self.cancelled = False
        self.pidfd = os.pidfd_open(process.pid)


class Agent:
    def __init__(self, inbound: int = 0, outbound: int = 1) -> None:
        self.inbound = inbound
        self.outbound = outbound
        self.selector: selectors.BaseSelector = selectors.DefaultSelector()
        self.inbox = bytearray()
        self.commands: dict[int, Command] = {}
        self.orphans: list[int] = []
        self.listening = True
        self.env = dict(os.environ)
        self.kernels = Kernels(self)

    # ------------------------------------------------------------------ the loop

    def serve(self) -> None:
        problem = self.check_privileges()
        ready = {"t": "ready", "id": 0, "ok": problem is None, "problem": problem}
        self.send({**ready, "window": STDIN_WINDOW})
        if problem is not None:
            return
        os.setgroups([])
        os.chdir("/")
        seed_tmp()
        self.selector.register(self.inbound, selectors.EVENT_READ, self.on_inbound)
        while self.listening or self.commands or self.kernels.kernels:
            deadlines = [command.deadline for command in self.commands.values()]
            deadlines.extend(self.kernels.deadlines())
            nearest = min(deadlines, default=math.inf)
            timeout = max(nearest - time.monotonic(), 0) if nearest < math.inf else None
            for key, _ in self.selector.select(timeout):
                if self.selector.get_map().get(key.fileobj) is key:  # not closed meanwhile
                    key.data()
            self.enforce_deadlines()
            self.kernels.enforce()

    @staticmethod
    def check_privileges() -> str | None:
        if os.geteuid() != 0:
            return f"running as uid {os.geteuid()}, not root"
        try:
            with as_sandbox_user():
                pass
        except PermissionError:
            return "cannot switch to the sandbox user (no CAP_SETUID/CAP_SETGID)"
        return None

    def send(self, header: Header, body: bytes = b"") -> None:
        view = memoryview(encode(header, body))
        while view:
            view = view[os.write(self.outbound, view) :]

    def as_user(self) -> contextlib.AbstractContextManager[None]:
        return as_sandbox_user()

    def spawn(
        self, argv: list[str], cwd: str, env: dict[str, str], pass_fds: tuple[int, ...]
    ) -> tuple[subprocess.Popen[bytes], int, int]:
        """A kernel: its stdin /dev/null, its stdout and stderr pipes we read."""
        out_read, out_write = os.pipe()
        err_read, err_write = os.pipe()
        try:
            process = spawn(argv, cwd, env, -1, out_write, err_write, pass_fds)
        except StartError:
            os.close(out_read)
            os.close(err_read)
            raise
        finally:
            os.close(out_write)
            os.close(err_write)
        return process, out_read, err_read

    def on_inbound(self) -> None:
        data = os.read(self.inbound, 1 << 20)
        if not data:  # the server let go of us: nobody will read results any more
            self.selector.unregister(self.inbound)
            self.listening = False
            for command in list(self.commands.values()):
                self.kill_tree(command)
            self.kernels.stop_all()
            return
        self.inbox += data
        for header, body in decode(self.inbox):
            self.handle(header, body)

    def handle(self, header: Header, body: bytes) -> None:
        ident = int(header.get("id", 0))
        op = header.get("op")
        try:
            if op == "run":
                self.run(ident, header, body)
            elif op == "input":
                self.feed(ident, body, bool(header.get("eof")))
            elif op == "cancel":
                self.cancel(ident, int(header["run"]))
            elif isinstance(op, str) and op.startswith("ctx_"):
                self.kernels.handle(op, ident, header, body)
            else:
                with as_sandbox_user():
                    reply = guest.handle(header)
                self.send({**reply, "t": "reply", "id": ident})
        except Exception as exc:  # one bad frame must not take the session's agent down
            kind = "bad_request" if isinstance(exc, (KeyError, ValueError, TypeError)) else "agent"
            self.send({"t": "reply", "id": ident, "ok": False, "kind": kind, "message": repr(exc)})

    # ------------------------------------------------------------------ commands

    def run(self, ident: int, header: Header, body: bytes) -> None:
        try:
            command, stdin_write = self.start(ident, header)
        except StartError as exc:
            self.send({"t": "exit", "id": ident, "code": exc.code, "error": exc.error})
            return
        self.commands[ident] = command
        for fd in command.outputs:
            os.set_blocking(fd, False)
            self.selector.register(fd, selectors.EVENT_READ, self.reader(command, fd))
        self.selector.register(command.pidfd, selectors.EVENT_READ, lambda: self.finish(command))
        if stdin_write >= 0:
            os.set_blocking(stdin_write, False)
            command.stdin_fd = stdin_write
            command.pending += body
            command.unreported = len(body)  # the first stdin came with the run, uncounted
            command.eof_wanted = not header.get("interactive")
            self.pump_stdin(command)

    def start(self, ident: int, header: Header) -> tuple[Command, int]:
        """The command started, with its output pipes, and our end of its stdin (-1 for
        none). Whatever fails on the way (a bad directory, an exec error, no descriptor
        left, a value Popen cannot take) closes every descriptor it opened first."""
        interactive = bool(header.get("interactive"))
        ours: list[int] = []  # closed should the start fail
        theirs: list[int] = []  # the child's ends: closed in any case
        try:
            argv = [str(part) for part in header["argv"]]
            env = {**self.env, **header.get("env", {}), guest.MARKER_ENV: header["marker"]}
            stdin_read = stdin_write = -1
            if header.get("stdin") or interactive:
                stdin_read, stdin_write = os.pipe()
                theirs.append(stdin_read)
                ours.append(stdin_write)
            out_read, out_write = os.pipe()
            ours.append(out_read)
            theirs.append(out_write)
            err_read, err_write = os.pipe()
            ours.append(err_read)
            theirs.append(err_write)
            process = spawn(argv, header["cwd"], env, stdin_read, out_write, err_write)
            try:
                command = Command(ident, header, process)
            except Exception:
                process.kill()
                process.wait()
                raise
        except Exception as exc:
            for fd in ours:
                os.close(fd)
            if isinstance(exc, StartError):
                raise
            raise StartError(EXIT_CANNOT_RUN, f"start_failed: {exc}") from None
        finally:
            for fd in theirs:
                os.close(fd)
        command.outputs = {out_read: 1, err_read: 2}
        return command, stdin_write

    def reader(self, command: Command, fd: int) -> Callable[[], bool]:
        return lambda: self.read_output(command, fd)

    def read_output(self, command: Command, fd: int) -> bool:
        """Move one chunk from a pipe to the server; False when the pipe is drained."""
        data = read_ready(fd, CHUNK)
        if data is None:
            return False
        stream = command.outputs[fd]
        if not data:
            self.selector.unregister(fd)
            os.close(fd)
            del command.outputs[fd]
            return False
        room = command.limit - command.sizes[stream]
        kept = data[: max(room, 0)]
        if kept:
            command.sizes[stream] += len(kept)
            self.send({"t": "out", "id": command.ident, "stream": stream}, kept)
        if len(data) > room and not command.overflowed:
            command.overflowed = True
            self.kill_tree(command)
        return True

    def feed(self, ident: int, data: bytes, eof: bool) -> None:
        command = self.commands.get(ident)
        if command is None and self.kernels.feed(ident, data, eof):
            return
        if command is None:
            return  # it finished before this arrived: the server stops sending with it
        if command.stdin_fd is None:  # it closed its input: dropped, the window handed back
            if data:
                self.send({"t": "taken", "id": ident, "n": len(data)})
            return
        room = STDIN_WINDOW - (len(command.pending) - command.unreported)
        command.pending += data[: max(room, 0)]
        command.eof_wanted = command.eof_wanted or eof
        self.pump_stdin(command)

    def cancel(self, ident: int, run: int) -> None:
        """Stop the running command ``run`` now, with the same tree kill as a timeout; its
        exit frame says ``cancelled``. One that already ended, or is being killed for its
        timeout or its output, is left alone (the reply says so)."""
        command = self.commands.get(run)
        stopping = command is not None and not (
            command.timed_out or command.overflowed or command.cancelled
        )
        if command is not None and stopping:
            command.cancelled = True
            self.kill_tree(command)
        self.send({"t": "reply", "id": ident, "ok": True, "cancelled": stopping})

    def pump_stdin(self, command: Command) -> None:
        """Pass waiting stdin to the program as far as its pipe takes it, and tell the
        server how much of the window that freed."""
        fd = command.stdin_fd
        if fd is None:
            return
        waiting = len(command.pending)
        if not write_ready(fd, command.pending, CHUNK):  # the program closed its input
            command.eof_wanted = True
        freed = waiting - len(command.pending)
        counted = max(freed - command.unreported, 0)
        command.unreported = max(command.unreported - freed, 0)
        if counted:
            self.send({"t": "taken", "id": command.ident, "n": counted})
        registered = fd in self.selector.get_map()
        if command.pending and not registered:
            self.selector.register(fd, selectors.EVENT_WRITE, lambda: self.pump_stdin(command))
        elif not command.pending:
            if registered:
                self.selector.unregister(fd)
            if command.eof_wanted:
                os.close(fd)
                command.stdin_fd = None

    def enforce_deadlines(self) -> None:
        now = time.monotonic()
        for command in list(self.commands.values()):
            if now >= command.deadline and not command.timed_out:
                command.timed_out = True
                self.kill_tree(command)

    def kill_tree(self, command: Command) -> None:
        """The process group at once, then every escapee (``setsid``, double forks)."""
        with as_sandbox_user():
            with contextlib.suppress(OSError):
                os.killpg(command.process.pid, signal.SIGKILL)
            spare = self.kernels.pids()  # younger than the command, but not its own
            guest.op_kill({"marker": command.marker, "anchor": command.anchor, "spare": spare})
        command.deadline = float("inf")

    def finish(self, command: Command) -> None:
        """The program exited: take what it left in the pipes, report, and leave the pipes
        to be drained quietly while background processes still hold them."""
        command.process.wait()
        self.selector.unregister(command.pidfd)
        os.close(command.pidfd)
        for fd in list(command.outputs):
            while fd in command.outputs and self.read_output(command, fd):
                pass
        code = command.process.returncode
        self.send(
            {
                "t": "exit",
                "id": command.ident,
                "code": code if code >= 0 else 128 - code,
                "timed_out": command.timed_out,
                "overflowed": command.overflowed,
                "cancelled": command.cancelled,
                "error": None,
            }
        )
        if command.stdin_fd is not None:
            with contextlib.suppress(KeyError):
                self.selector.unregister(command.stdin_fd)
            os.close(command.stdin_fd)
        for fd in command.outputs:
            self.selector.modify(fd, selectors.EVENT_READ, self.discarder(fd))
            self.orphans.append(fd)
        while len(self.orphans) > MAX_ORPHANS:
            self.close_orphan(self.orphans[0])
        del self.commands[command.ident]

    def discarder(self, fd: int) -> Callable[[], None]:
        def discard() -> None:
            try:
                if os.read(fd, CHUNK):
                    return
            except BlockingIOError:
                return
            except OSError:
                pass
            self.close_orphan(fd)

        return discard

    def close_orphan(self, fd: int) -> None:
        self.orphans.remove(fd)
        self.selector.unregister(fd)
        os.close(fd)


def main() -> None:
    with contextlib.suppress(BrokenPipeError):  # the server went away: nothing to report to
        Agent().serve()


if __name__ == "__main__":
    main()
