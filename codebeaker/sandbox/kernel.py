"""CodeBeaker's code-context kernel: one long-lived Python interpreter per context.

The agent starts it as the sandbox user with ``kernel.py IN OUT``: frames (frames.py) from
the agent arrive on descriptor IN, frames to it go out on OUT; descriptors 1 and 2 are
pipes the agent reads as the running cell's stdout and stderr (so subprocesses and C code
are captured too), descriptor 0 is /dev/null. Standard library only.

Agent to kernel:
    run     count of the cell, item_limit, interactive; body: the code (UTF-8)
    stdin   count, eof; body: input a cell asked for
    shown   seq: a display went out after the output printed before it
Kernel to agent:
    ready   pid, once started
    read    count: the cell wants input (``input()``, ``sys.stdin``)
    display seq, kind ("result": the last expression's value; "display": ``display()`` or
            a figure); body: a JSON MIME bundle. The kernel waits for ``shown``: its
            output and its displays reach the agent on different pipes, and only so can
            the agent tell which output came before the display and which after.
    done    count, status ("ok" | "error"), error {name, value, traceback}; with
            ``exiting`` the cell called ``sys.exit`` and the interpreter ends next

A cell runs in the main thread with SIGINT raising KeyboardInterrupt; between cells SIGINT
is ignored, so an interrupt that arrives late cannot hurt the kernel.
"""

from __future__ import annotations

import ast
import base64
import builtins
import codecs
import contextlib
import importlib.util
import io
import json
import linecache
import os
import signal
import sys
import threading
import traceback
import types
from collections.abc import Callable
from importlib.machinery import ModuleSpec
from typing import Any

try:
    from codebeaker.sandbox.frames import Header, decode, encode
except ImportError:  # in the image: /opt/codebeaker/frames.py, beside this file, no package
    from frames import Header, decode, encode  # type: ignore[import-not-found, no-redef]

CELL_PREFIX = "<cell "
CO_COROUTINE = 0x80  # inspect.CO_COROUTINE, without importing inspect
COMPILE_FLAGS = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
DEFAULT_ITEM_LIMIT = 1 << 20
INLINE_BACKEND = "codebeaker_inline"
PR_SET_CHILD_SUBREAPER = 36
MIME_METHODS = (
    ("text/html", "_repr_html_"),
    ("text/markdown", "_repr_markdown_"),
    ("text/latex", "_repr_latex_"),
    ("image/svg+xml", "_repr_svg_"),
    ("image/png", "_repr_png_"),
    ("image/jpeg", "_repr_jpeg_"),
    ("application/json", "_repr_json_"),
)
BINARY_MIMES = {"image/png", "image/jpeg"}
DATA_PACKAGES = ("numpy", "pandas", "matplotlib")
MAX_LISTED_PACKAGES = 80
MAX_ZOMBIES = 16


class Channel:
    """Frames to and from the agent over two pipes."""

    def __init__(self, inbound: int, outbound: int) -> None:
        self.inbound = inbound
        self.outbound = outbound
        self.buffer = bytearray()
        self.writing = threading.Lock()  # a thread of the cell may display() too

    def send(self, header: Header, body: bytes = b"") -> None:
        """One whole frame: an interrupt must not leave half of one in the pipe."""
        view = memoryview(encode(header, body))
        with self.writing:
            blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
            try:
                while view:
                    view = view[os.write(self.outbound, view) :]
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, blocked)

    def receive(self) -> tuple[Header, bytes]:
        while True:
            for frame in decode(self.buffer):
                return frame
            data = os.read(self.inbound, 1 << 16)
            if not data:  # the agent is gone: nobody will ask anything any more
                os._exit(0)
            self.buffer += data


class CellInput(io.TextIOBase):
    """``sys.stdin`` of the cells: asks the agent for input only when the cell reads, so
    input never piles up in a kernel; at EOF at once when the call does not stream."""

    def __init__(self, channel: Channel) -> None:
        self._channel = channel
        self._pending = bytearray()
        self._eof = True
        self._count = 0
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def start(self, count: int, interactive: bool) -> None:
        self._pending.clear()
        self._eof = not interactive
        self._count = count
        self._decoder.reset()

    def readable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def _more(self) -> None:
        self._channel.send({"t": "read", "count": self._count})
        while True:
            header, body = self._channel.receive()
            if header.get("t") == "stdin" and header.get("count") == self._count:
                break
        self._pending += body
        self._eof = bool(header.get("eof"))

    def readline(self, size: int | None = -1) -> str:  # type: ignore[override]
        limit = -1 if size is None else size
        while b"\n" not in self._pending and not self._eof:
            if 0 <= limit <= len(self._pending):
                break
            self._more()
        end = self._pending.find(b"\n") + 1 or len(self._pending)
        if limit >= 0:
            end = min(end, limit)
        return self._take(end)

    def read(self, size: int | None = -1) -> str:
        limit = -1 if size is None else size
        while not self._eof and (limit < 0 or len(self._pending) < limit):
            self._more()
        return self._take(len(self._pending) if limit < 0 else min(limit, len(self._pending)))

    def _take(self, end: int) -> str:
        data = bytes(self._pending[:end])
        del self._pending[:end]
        return self._decoder.decode(data, final=not self._pending and self._eof)


def _capped(text: str, limit: int) -> tuple[str, bool]:
    return (text, False) if len(text) <= limit else (text[:limit] + "…", True)


def _call_repr(obj: Any, method: str) -> Any:
    """An object's ``_repr_*_`` result, or None when it has none or it fails."""
    try:
        function = getattr(obj, method, None)
        return function() if callable(function) else None
    except Exception:  # a broken repr must not break the cell (IPython skips it too)
        return None


def _figure_png(figure: Any) -> bytes | None:
    try:
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
        return buffer.getvalue()
    except Exception:  # too large to render, or a broken artist
        return None


def _is_figure(obj: Any) -> bool:
    figure = getattr(sys.modules.get("matplotlib.figure"), "Figure", None)
    return isinstance(figure, type) and isinstance(obj, figure)


def mime_bundle(obj: Any, limit: int) -> tuple[dict[str, Any], bool]:
    """Every representation ``obj`` offers, each cut (text) or left out (images, JSON)
    past ``limit`` bytes; and whether anything was."""
    raw: dict[str, Any] = {}
    if not isinstance(obj, type):  # a class's _repr_html_ is a function wanting an instance
        bundle = _call_repr(obj, "_repr_mimebundle_")
        if isinstance(bundle, tuple):
            bundle = bundle[0]
        if isinstance(bundle, dict):
            raw.update({key: value for key, value in bundle.items() if isinstance(key, str)})
        for mime, method in MIME_METHODS:
            if mime not in raw and (value := _call_repr(obj, method)) is not None:
                raw[mime] = value[0] if isinstance(value, tuple) else value
        if _is_figure(obj) and "image/png" not in raw:
            raw["image/png"] = _figure_png(obj)
    try:
        raw["text/plain"] = repr(obj)
    except Exception as exc:
        raw["text/plain"] = f"<repr failed: {type(exc).__name__}: {exc}>"
    data: dict[str, Any] = {}
    truncated = False
    for mime, value in raw.items():
        if value is None:
            continue
        if isinstance(value, bytes):
            if mime not in BINARY_MIMES and not mime.startswith("image/"):
                continue
            value = base64.b64encode(value).decode("ascii")
        if isinstance(value, str):
            if len(value) > limit and (mime in BINARY_MIMES or mime.startswith("image/")):
                truncated = True  # half a picture is no picture
                continue
            data[mime], cut = _capped(value, limit)
            truncated = truncated or cut
            continue
        try:
            encoded = json.dumps(value)
        except (TypeError, ValueError):
            continue
        if len(encoded) > limit:
            truncated = True
            continue
        data[mime] = value
    return data, truncated


def packages_hint(missing: str) -> str:
    """What a missing import can be replaced with: the packages this image has."""
    from importlib import metadata  # only when needed: the scan costs tens of milliseconds

    names = sorted(
        {f"{dist.metadata['Name']} {dist.version}" for dist in metadata.distributions()},
        key=str.lower,
    )
    shown = ", ".join(names[:MAX_LISTED_PACKAGES]) or "none beyond the standard library"
    if len(names) > MAX_LISTED_PACKAGES:
        shown += f", and {len(names) - MAX_LISTED_PACKAGES} more"
    hint = f" (the sandbox cannot install packages; this image has: {shown})"
    installed = {name.split(" ")[0].lower() for name in names}
    if missing.partition(".")[0] in DATA_PACKAGES and missing.partition(".")[0] not in installed:
        hint += "; the python-data language has numpy, pandas and matplotlib"
    return hint


def describe_error(exc: BaseException, limit: int) -> dict[str, str]:
    """name, value and a traceback that starts at the cell: the kernel's frames are not
    the user's business. A syntax error shows its line and caret."""
    if isinstance(exc, ModuleNotFoundError) and exc.name and exc.msg:
        exc.msg += packages_hint(exc.name)
    tb = exc.__traceback__
    while tb is not None and not tb.tb_frame.f_code.co_filename.startswith(CELL_PREFIX):
        tb = tb.tb_next
    report = traceback.TracebackException(type(exc), exc, tb)
    ours = os.path.abspath(__file__)  # input() and display() run here, below the cell
    report.stack = traceback.StackSummary.from_list(
        [frame for frame in report.stack if os.path.abspath(frame.filename) != ours]
    )
    text, _ = _capped("".join(report.format()), limit)
    value, _ = _capped(str(exc), limit)
    return {"name": type(exc).__name__, "value": value, "traceback": text}


class Kernel:
    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self.count = 0
        self.shown = 0
        self.item_limit = DEFAULT_ITEM_LIMIT
        self.stdin = CellInput(channel)
        main = types.ModuleType("__main__")
        main.__dict__["__builtins__"] = builtins
        self.main = main
        self.namespace = main.__dict__
        self._loop: Any = None
        self._fflush: Callable[[Any], int] | None = None

    # ------------------------------------------------------------------ cells

    def serve(self) -> None:
        self.channel.send({"t": "ready", "pid": os.getpid()})
        while True:
            header, body = self.channel.receive()
            if header.get("t") == "run":  # anything else here is late (input, say)
                self.run(body.decode("utf-8", errors="surrogatepass"), header)

    def run(self, code: str, header: Header) -> None:
        self.count += 1
        self.item_limit = int(header.get("item_limit") or DEFAULT_ITEM_LIMIT)
        self.stdin.start(self.count, bool(header.get("interactive")))
        done: Header = {"t": "done", "count": self.count, "status": "ok", "error": None}
        try:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            try:
                self.execute(code)
                self.flush_figures()
            finally:
                signal.signal(signal.SIGINT, signal.SIG_IGN)
        except SystemExit as exc:  # the interpreter ends; the agent starts a new one
            done.update(status="error", error=describe_error(exc, self.item_limit), exiting=True)
            self.flush_output()
            self.channel.send(done)
            os._exit(exc.code if isinstance(exc.code, int) else 1)
        except BaseException as exc:
            done.update(status="error", error=describe_error(exc, self.item_limit))
        self.flush_output()
        self.channel.send(done)
        reap_orphans()

    def execute(self, code: str) -> None:
        """Run the cell; a trailing expression is evaluated apart and its value shown."""
        filename = f"{CELL_PREFIX}{self.count}>"
        linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
        tree = compile(code, filename, "exec", ast.PyCF_ONLY_AST | COMPILE_FLAGS)
        last = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last = ast.Expression(tree.body.pop().value)
        self.evaluate(compile(tree, filename, "exec", COMPILE_FLAGS))
        if last is not None:
            value = self.evaluate(compile(last, filename, "eval", COMPILE_FLAGS))
            if value is not None:
                self.namespace["_"] = value
                self.show("result", value)

    def evaluate(self, code: types.CodeType) -> Any:
        value = eval(code, self.namespace)  # noqa: S307 - running the user's code is the job
        if code.co_flags & CO_COROUTINE:  # top-level await
            value = self.loop().run_until_complete(value)
        return value

    def loop(self) -> Any:
        """One event loop for the context's lifetime: tasks a cell starts live on."""
        if self._loop is None:
            import asyncio

            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
        return self._loop

    # ------------------------------------------------------------------ results

    def show(self, kind: str, obj: Any) -> None:
        data, truncated = mime_bundle(obj, self.item_limit)
        if _is_figure(obj):
            pyplot = sys.modules.get("matplotlib.pyplot")
            if pyplot is not None:
                pyplot.close(obj)  # shown now: not again with the open figures
        self.flush_output()
        self.shown += 1
        body = json.dumps(data).encode()
        header = {"t": "display", "seq": self.shown, "kind": kind, "truncated": truncated}
        self.channel.send(header, body)
        if threading.current_thread() is not threading.main_thread():
            return  # only the main thread reads the channel; order is best effort here
        while True:
            reply, _ = self.channel.receive()
            if reply.get("t") == "shown" and reply.get("seq") == self.shown:
                return

    def display(self, *objects: Any) -> None:
        """The ``display()`` builtin: each object's rich representations, in order."""
        for obj in objects:
            self.show("display", obj)

    def flush_figures(self, *args: Any, **kwargs: Any) -> None:
        """Every open pyplot figure as a picture, then closed (also ``plt.show()``)."""
        pyplot = sys.modules.get("matplotlib.pyplot")
        if pyplot is None:
            return
        for number in pyplot.get_fignums():
            self.show("display", pyplot.figure(number))
        pyplot.close("all")

    def flush_output(self) -> None:
        """Everything printed so far into the pipes before a frame that follows it."""
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        ctypes = sys.modules.get("ctypes")  # C stdio buffers only matter once C is called
        if ctypes is not None:
            if self._fflush is None:
                self._fflush = ctypes.CDLL(None).fflush
            self._fflush(None)


class InlineBackend:
    """Finder and loader: matplotlib gets a non-interactive backend whose ``show()`` sends
    the open figures to the cell's results. Only this interpreter is pointed at it; the
    user's subprocesses keep matplotlib's own default (Agg, with no display)."""

    def __init__(self, kernel: Kernel) -> None:
        self._kernel = kernel
        self._looking = False

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> ModuleSpec | None:
        if name == INLINE_BACKEND:
            return importlib.util.spec_from_loader(name, self)  # type: ignore[arg-type]
        if name != "matplotlib" or self._looking or "MPLBACKEND" in os.environ:
            return None
        self._looking = True
        try:
            spec = importlib.util.find_spec(name)
        finally:
            self._looking = False
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        original = loader.exec_module

        def exec_module(module: types.ModuleType) -> None:
            original(module)
            module.rcParams["backend"] = f"module://{INLINE_BACKEND}"

        loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec

    def create_module(self, spec: ModuleSpec) -> None:
        return None

    def exec_module(self, module: types.ModuleType) -> None:
        from matplotlib.backend_bases import FigureManagerBase  # type: ignore[import-not-found]
        from matplotlib.backends.backend_agg import FigureCanvasAgg  # type: ignore[import-not-found]

        module.FigureCanvas = FigureCanvasAgg  # type: ignore[attr-defined]
        module.FigureManager = FigureManagerBase  # type: ignore[attr-defined]
        module.show = self._kernel.flush_figures  # type: ignore[attr-defined]


def reap_orphans() -> None:
    """As subreaper we inherit the cells' orphans; their zombies would use up the pids
    limit. Past a few, every zombie child is reaped (a cell's own ``Popen`` among them
    then reads exit status 0, which is why a few are left alone)."""
    me = str(os.getpid())
    zombies = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] == b"Z" and fields[1] == me.encode():
            zombies.append(int(name))
    if len(zombies) > MAX_ZOMBIES:
        for pid in zombies:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)


def become_subreaper() -> None:
    """Orphans of the cells' processes (double forks) stay our descendants, so the tree
    kill finds them by parentage even when they dropped the marker and left our session."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    become_subreaper()
    inbound, outbound = int(sys.argv[1]), int(sys.argv[2])
    sys.path[0] = ""  # as the REPL: modules in the working directory import
    kernel = Kernel(Channel(inbound, outbound))
    sys.modules["__main__"] = kernel.main
    sys.stdin = kernel.stdin
    sys.meta_path.insert(0, InlineBackend(kernel))
    builtins.display = kernel.display  # type: ignore[attr-defined]
    kernel.serve()


if __name__ == "__main__":
    main()
