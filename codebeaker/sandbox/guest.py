"""CodeBeaker's in-container helper: file operations under the path rules, and the tree kill.

Baked into every runtime image at /opt/codebeaker/guest.py and run as the sandbox user
(uid 1000) through the Docker exec API. Standard library only: it runs on the image's
interpreter (Debian bookworm's 3.11), not the server's. One JSON request on stdin, one JSON
reply on stdout: ``{"ok": true, ...}`` or ``{"ok": false, "kind": "...", "message": "..."}``.

Paths are resolved *inside* the container (``..`` and symlinks included) so a symlink
planted by user code can never lead a file operation out of /workspace or /tmp.

A file name need not be UTF-8; JSON text must be. A name or path that is not goes out as its
replacement-character text with the raw bytes in base64 beside it (``name`` and
``nameBase64``), never as the lone surrogates Python decodes it to.
"""

import base64
import errno
import json
import os
import shutil
import signal
import stat
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

Request = dict[str, Any]
Reply = dict[str, Any]

ROOTS = ("/workspace", "/tmp")
MARKER_ENV = "CODEBEAKER_RUN"
SANDBOX_UID = 1000
MAX_LIST_ENTRIES = 10000

ERRNO_KINDS = {
    errno.ENOENT: "file_not_found",
    errno.EEXIST: "file_exists",
    errno.EISDIR: "not_a_regular_file",
    errno.ENOTDIR: "not_a_directory",
    errno.ENOTEMPTY: "directory_not_empty",
    errno.ENOSPC: "no_space",
    errno.EDQUOT: "no_space",
    errno.EFBIG: "file_too_large",
    errno.EACCES: "permission_denied",
    errno.EPERM: "permission_denied",
    errno.EROFS: "permission_denied",
    errno.ELOOP: "path_outside_workspace",
    errno.ENXIO: "not_a_regular_file",  # a FIFO nobody reads, opened without blocking
}


class GuestError(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


def _inside(path: str) -> bool:
    return any(path == root or path.startswith(root + "/") for root in ROOTS)


def resolve(path: str, follow_last: bool = True) -> str:
    """The real absolute path, or GuestError when it leaves the allowed roots."""
    if not path.startswith("/"):
        path = os.path.join("/workspace", path)
    if follow_last:
        real = os.path.realpath(path)
    else:  # act on a symlink itself (delete, list), never on what it points to
        head, tail = os.path.split(os.path.normpath(path))
        real = os.path.join(os.path.realpath(head), tail) if tail else os.path.realpath(head)
    if not _inside(real):
        raise GuestError("path_outside_workspace", path)
    return real


def _iso(timestamp: float) -> str:
    moment = datetime.fromtimestamp(timestamp, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _makedirs(path: str) -> None:
    try:
        os.makedirs(path, exist_ok=True)
    except FileExistsError:
        raise GuestError("not_a_directory", path) from None


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _open_for_writing(path: str, extra: int) -> int:
    """A regular file opened for writing, never through a symlink. Opened non-blocking
    first, so a FIFO planted by user code fails at once instead of hanging us; O_TRUNC
    waits until the file is known to be regular (truncating a device is not harmless)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
    fd = os.open(path, flags | (extra & ~os.O_TRUNC), 0o644)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise GuestError("not_a_regular_file", path)
        os.set_blocking(fd, True)
        if extra & os.O_TRUNC:
            os.ftruncate(fd, 0)
    except BaseException:
        os.close(fd)
        raise
    return fd


def op_write(req: Request) -> Reply:
    path = resolve(req["path"])
    if path in ROOTS:
        raise GuestError("not_a_regular_file", path)
    data = base64.b64decode(req["content"])
    mode = {"Create": os.O_TRUNC, "Append": os.O_APPEND, "CreateNew": os.O_EXCL}[req["mode"]]
    _makedirs(os.path.dirname(path))
    try:
        fd = _open_for_writing(path, mode)
    except FileExistsError:
        kind = "file_exists" if req["mode"] == "CreateNew" else "not_a_regular_file"
        raise GuestError(kind, path) from None
    try:
        _write_all(fd, data)
    finally:
        os.close(fd)
    return {"path": path, "bytes": len(data)}


def op_read(req: Request) -> Reply:
    path = resolve(req["path"])
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise GuestError("not_a_regular_file", path)
        limit = int(req["max_bytes"])
        chunks: list[bytes] = []
        remaining = limit + 1
        while remaining > 0:
            chunk = os.read(fd, min(remaining, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
    finally:
        os.close(fd)
    data = b"".join(chunks)
    truncated = len(data) > limit
    data = data[:limit]
    return {
        "path": path,
        "content": base64.b64encode(data).decode("ascii"),
        "bytes": len(data),
        "size": max(info.st_size, len(data)),
        "truncated": truncated,
    }


def op_mkdir(req: Request) -> Reply:
    path = resolve(req["path"])
    _makedirs(path)
    return {"path": path}


def op_copy(req: Request) -> Reply:
    source = resolve(req["source"])
    destination = resolve(req["destination"])
    if os.path.isdir(destination):
        destination = resolve(os.path.join(destination, os.path.basename(source)))
    src_fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(src_fd).st_mode):
            raise GuestError("not_a_regular_file", source)
        if source == destination:
            raise GuestError("file_exists", destination)
        _makedirs(os.path.dirname(destination))
        dst_fd = _open_for_writing(destination, os.O_TRUNC if req["overwrite"] else os.O_EXCL)
        try:
            copied = 0
            while chunk := os.read(src_fd, 1 << 20):
                _write_all(dst_fd, chunk)
                copied += len(chunk)
        finally:
            os.close(dst_fd)
    finally:
        os.close(src_fd)
    return {"source": source, "destination": destination, "bytes": copied}


def op_delete(req: Request) -> Reply:
    path = resolve(req["path"], follow_last=False)
    if path in ROOTS:
        raise GuestError("permission_denied", "refusing to delete " + path)
    info = os.lstat(path)
    if stat.S_ISDIR(info.st_mode):
        if req["recursive"]:
            shutil.rmtree(path)
        else:
            os.rmdir(path)
    else:
        os.unlink(path)
    return {"path": path, "deleted": True}


def _entry(path: str, name: str, info: os.stat_result) -> Reply:
    if stat.S_ISLNK(info.st_mode):
        kind = "symlink"
    elif stat.S_ISDIR(info.st_mode):
        kind = "directory"
    else:
        kind = "file"
    return {
        "name": name,
        "path": path,
        "type": kind,
        "size": info.st_size if kind == "file" else 0,
        "modifiedAt": _iso(info.st_mtime),
    }


def op_list(req: Request) -> Reply:
    root = resolve(req["path"])
    if not os.path.isdir(root):
        raise GuestError("not_a_directory" if os.path.exists(root) else "file_not_found", root)
    entries: list[Reply] = []
    pending, truncated = [root], False
    while pending and not truncated:
        directory = pending.pop()
        with os.scandir(directory) as scan:
            for item in scan:
                if item.name.startswith(".") and not req["include_hidden"]:
                    continue
                if len(entries) >= MAX_LIST_ENTRIES:
                    truncated = True
                    break
                info = item.stat(follow_symlinks=False)
                entries.append(_entry(item.path, item.name, info))
                if req["recursive"] and stat.S_ISDIR(info.st_mode):
                    pending.append(item.path)
    entries.sort(key=lambda entry: entry["path"])
    return {"path": root, "entries": entries, "truncated": truncated}


def _processes() -> Iterator[tuple[int, int, int, list[bytes]]]:
    """(pid, parent pid, start tick, environ) of each live process of the sandbox user but
    ourselves."""
    uid, me = SANDBOX_UID, os.getpid()
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
            if fields[0] in (b"Z", b"X") or os.stat("/proc/" + name).st_uid != uid:
                continue
            try:
                with open(f"/proc/{name}/environ", "rb") as handle:
                    environ = handle.read().split(b"\0")
            except OSError:
                environ = []
            yield int(name), int(fields[1]), int(fields[19]), environ
        except (OSError, IndexError, ValueError):
            continue  # the process ended while we looked


def _tree(roots: set[int], parents: dict[int, int]) -> set[int]:
    """``roots`` and all their live descendants."""
    found = set(roots)
    grew = True
    while grew:
        grew = False
        for pid, parent in parents.items():
            if parent in found and pid not in found:
                found.add(pid)
                grew = True
    return found


def start_ticks(pid: int) -> int:
    """When a process started, in clock ticks since boot (/proc/PID/stat field 22)."""
    with open(f"/proc/{pid}/stat", "rb") as handle:
        return int(handle.read().rsplit(b")", 1)[1].split()[19])


def _boot_ticks(epoch: float) -> int:
    with open("/proc/stat") as handle:
        btime = next(int(line.split()[1]) for line in handle if line.startswith("btime"))
    return int((epoch - btime) * os.sysconf("SC_CLK_TCK"))


def _freeze(me: int) -> set[int]:
    """SIGSTOP every process we may signal, until no new one appears. Bare signals, no
    /proc reads: a fork bomb is starving us of CPU, and each stop gives some back. Other
    users' processes (the keep-alive) refuse with EPERM and are left alone; the agent,
    running as root with CAP_KILL, checks the owner itself."""
    stopped: set[int] = set()
    privileged = os.geteuid() == 0
    for _ in range(100):
        fresh = False
        for name in os.listdir("/proc"):
            if not name.isdigit() or int(name) in stopped or int(name) == me:
                continue
            try:
                if privileged and os.stat("/proc/" + name).st_uid != SANDBOX_UID:
                    continue
                os.kill(int(name), signal.SIGSTOP)
            except OSError:
                continue
            stopped.add(int(name))
            fresh = True
        if not fresh:
            break
    return stopped


def op_kill(req: Request) -> Reply:
    """Kill every process of one command: those carrying its marker, and anything of the
    sandbox uid started since the command began (which catches ``setsid`` and ``env -i``
    escapees). Commands of one session run one at a time, so nothing else is that young
    but the code contexts' kernels, whose trees ``spare`` names. Everything is frozen
    first; older processes (a server started by an earlier command) are continued
    afterwards. ``anchor`` (the first process's start, in clock ticks since boot) is exact;
    ``since`` (epoch seconds) is only as good as /proc/stat's whole-second boot time, which
    is why the marked processes may move the anchor earlier.

    A context's kill names its kernel as ``root`` instead of a start: the kernel, its
    descendants (it is their subreaper, so double forks stay among them) and its marker."""
    me = os.getpid()
    tag = f"{MARKER_ENV}={req['marker']}".encode()
    anchor: int | None = req.get("anchor")
    if anchor is None and req.get("since"):
        anchor = _boot_ticks(req["since"])
    roots = {int(req["root"])} if req.get("root") else set()
    spare = {int(pid) for pid in req.get("spare") or ()}
    killed: set[int] = set()
    for _ in range(20):
        stopped = _freeze(me)
        procs = list(_processes())
        parents = {pid: parent for pid, parent, _, _ in procs}
        tree = _tree(roots, parents) if roots else set()
        spared = _tree(spare, parents) if spare else set()
        marked = [start for _, _, start, environ in procs if tag in environ]
        if marked and anchor is not None:
            anchor = min(anchor, *marked)
        targets = {
            pid
            for pid, _, start, environ in procs
            if tag in environ
            or pid in tree
            or (anchor is not None and start >= anchor and pid not in spared)
        }
        for pid in targets:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        for pid in stopped - targets:
            try:
                os.kill(pid, signal.SIGCONT)
            except OSError:
                pass
        killed |= targets
        if not targets:
            break
        time.sleep(0.01)
    return {"killed": len(killed)}


OPS: dict[str, Callable[[Request], Reply]] = {
    "write": op_write,
    "read": op_read,
    "mkdir": op_mkdir,
    "copy": op_copy,
    "delete": op_delete,
    "list": op_list,
    "kill": op_kill,
}


def raw_bytes(text: str) -> bytes:
    """The bytes a name decoded by the OS layer stood for (undecodable ones are escaped
    as lone surrogates, U+DC80 to U+DCFF); any other lone surrogate is kept as is, so
    that this never raises."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")


def readable(text: str) -> str:
    """``text`` with every byte that is not UTF-8 shown as U+FFFD: valid in any JSON."""
    return raw_bytes(text).decode("utf-8", "replace")


def portable(reply: Reply) -> Reply:
    """Every string of a reply (entries included) made valid UTF-8: a name that is not
    becomes ``readable`` and gains ``<key>Base64``, the base64 of its raw bytes."""
    out: Reply = {}
    for key, value in reply.items():
        if isinstance(value, list):
            value = [portable(item) if isinstance(item, dict) else item for item in value]
        elif isinstance(value, str) and readable(value) != value:
            out[key] = readable(value)
            out[key + "Base64"] = base64.b64encode(raw_bytes(value)).decode("ascii")
            continue
        out[key] = value
    return out


def handle(req: Request) -> Reply:
    """One request to one reply; never raises, so the caller always gets JSON back."""
    try:
        return portable(dict(OPS[req["op"]](req), ok=True))
    except GuestError as exc:
        return {"ok": False, "kind": exc.kind, "message": readable(exc.message)}
    except OSError as exc:
        kind = ERRNO_KINDS.get(exc.errno or 0, "io_error")
        message = exc.filename or exc.strerror or str(exc)
        return {"ok": False, "kind": kind, "message": readable(str(message))}
    except (KeyError, ValueError, TypeError) as exc:
        return {"ok": False, "kind": "bad_request", "message": repr(exc)}


def serve() -> None:
    """Stay resident: one JSON request per line in, one JSON reply per line out. Started
    before a command runs, it can kill that command's tree without needing a free pid."""
    for line in sys.stdin.buffer:
        try:
            reply = handle(json.loads(line))
        except ValueError as exc:
            reply = {"ok": False, "kind": "bad_request", "message": repr(exc)}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


def main() -> None:
    if sys.argv[1:] == ["serve"]:
        serve()
        return
    request = json.loads(sys.stdin.buffer.read())
    sys.stdout.write(json.dumps(handle(request)))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
