"""The file commands and the path rules, in the shared python session."""

from __future__ import annotations

import base64
import re
from typing import Any

import pytest

from .client import RpcClient

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
ENTRY_FIELDS = {"name", "path", "type", "size", "modifiedAt"}


async def write(
    rpc: RpcClient, sid: str, path: str, content: str, **fields: object
) -> dict[str, Any]:
    return await rpc.ok(sid, {"type": "write_file", "path": path, "content": content, **fields})


async def read(rpc: RpcClient, sid: str, path: str, **fields: object) -> dict[str, Any]:
    return await rpc.ok(sid, {"type": "read_file", "path": path, **fields})


# --------------------------------------------------------------------------- write / read


async def test_write_modes(rpc: RpcClient, py_session: str, workdir: str) -> None:
    path = f"{workdir}/modes.txt"
    assert await write(rpc, py_session, path, "one\n") == {"path": path, "bytes": 4}
    assert (await read(rpc, py_session, path))["content"] == "one\n"

    # Create (the default) replaces
    assert await write(rpc, py_session, path, "two\n", mode="Create") == {"path": path, "bytes": 4}
    assert (await read(rpc, py_session, path))["content"] == "two\n"

    # Append appends; on a missing file it creates it
    assert await write(rpc, py_session, path, "three\n", mode="Append") == {
        "path": path,
        "bytes": 6,
    }
    assert (await read(rpc, py_session, path))["content"] == "two\nthree\n"
    fresh = f"{workdir}/appended.txt"
    await write(rpc, py_session, fresh, "a", mode="Append")
    assert (await read(rpc, py_session, fresh))["content"] == "a"

    # Overwrite is Create
    await write(rpc, py_session, path, "four\n", mode="Overwrite")
    assert (await read(rpc, py_session, path))["content"] == "four\n"

    # CreateNew creates a new file, and refuses an existing one without touching it
    new = f"{workdir}/new.txt"
    assert await write(rpc, py_session, new, "new", mode="CreateNew") == {"path": new, "bytes": 3}
    await rpc.failed(
        py_session,
        {"type": "write_file", "path": path, "content": "clobbered", "mode": "CreateNew"},
        "file_exists",
    )
    assert (await read(rpc, py_session, path))["content"] == "four\n"


async def test_relative_paths_resolve_against_workspace(
    rpc: RpcClient, py_session: str, workdir: str
) -> None:
    relative = workdir.removeprefix("/workspace/") + "/rel.txt"
    assert await write(rpc, py_session, relative, "r") == {"path": f"{workdir}/rel.txt", "bytes": 1}
    got = await read(rpc, py_session, f"{workdir}/rel.txt")
    assert got["path"] == f"{workdir}/rel.txt"
    assert got["content"] == "r"
    # `..` that stays inside is fine
    dotted = f"{relative.split('/')[0]}/../{relative}"
    assert (await read(rpc, py_session, dotted))["path"] == f"{workdir}/rel.txt"
    assert (await read(rpc, py_session, "./" + relative))["content"] == "r"


async def test_utf8_round_trip(rpc: RpcClient, py_session: str, workdir: str) -> None:
    text = "héllo wörld ✓ 🙂\nzweite Zeile\n"
    path = f"{workdir}/utf8.txt"
    written = await write(rpc, py_session, path, text, encoding="utf8")
    assert written["bytes"] == len(text.encode())
    got = await read(rpc, py_session, path)
    assert got["content"] == text
    assert got["encoding"] == "utf8"
    assert got["bytes"] == len(text.encode())
    assert got["size"] == len(text.encode())
    assert got["truncated"] is False
    assert got["path"] == path
    # the bytes on disk are UTF-8
    wc = await rpc.ok(
        py_session, {"type": "execute_shell", "commandName": "wc", "args": ["-c", path]}
    )
    assert wc["stdout"].split()[0] == str(len(text.encode()))


async def test_base64_binary_round_trip(rpc: RpcClient, py_session: str, workdir: str) -> None:
    data = bytes(range(256)) * 4 + b"\x00\xff\xfe"
    path = f"{workdir}/blob.bin"
    written = await write(rpc, py_session, path, base64.b64encode(data).decode(), encoding="base64")
    assert written == {"path": path, "bytes": len(data)}
    got = await read(rpc, py_session, path, encoding="base64")
    assert got["encoding"] == "base64"
    assert base64.b64decode(got["content"]) == data
    assert got["bytes"] == len(data)
    assert got["truncated"] is False
    # what a program in the sandbox sees is the same bytes
    digest = await rpc.ok(
        py_session,
        {
            "type": "execute_shell",
            "commandName": "python3",
            "args": ["-c", f"import sys; d=open('{path}','rb').read(); print(len(d), d.hex()[:8])"],
        },
    )
    assert digest["stdout"] == f"{len(data)} 00010203\n"
    # read as utf8, invalid sequences become U+FFFD instead of failing
    text = await read(rpc, py_session, path, encoding="utf8")
    assert "\ufffd" in text["content"]


async def test_read_max_bytes(rpc: RpcClient, py_session: str, workdir: str) -> None:
    path = f"{workdir}/digits.txt"
    await write(rpc, py_session, path, "0123456789")
    cut = await read(rpc, py_session, path, maxBytes=4)
    assert cut["content"] == "0123"
    assert cut["bytes"] == 4
    assert cut["truncated"] is True
    assert cut["size"] == 10
    whole = await read(rpc, py_session, path, maxBytes=100)
    assert whole["content"] == "0123456789"
    assert whole["bytes"] == 10
    assert whole["truncated"] is False
    assert whole["size"] == 10
    exact = await read(rpc, py_session, path, max_bytes=10)
    assert exact["content"] == "0123456789"
    assert exact["truncated"] is False
    b64 = await read(rpc, py_session, path, maxBytes=3, encoding="base64")
    assert base64.b64decode(b64["content"]) == b"012"
    assert b64["truncated"] is True


async def test_empty_file(rpc: RpcClient, py_session: str, workdir: str) -> None:
    path = f"{workdir}/empty"
    assert await write(rpc, py_session, path, "") == {"path": path, "bytes": 0}
    got = await read(rpc, py_session, path)
    assert got["content"] == ""
    assert got["bytes"] == 0
    assert got["truncated"] is False


async def test_read_failures(rpc: RpcClient, py_session: str, workdir: str) -> None:
    await rpc.failed(
        py_session, {"type": "read_file", "path": f"{workdir}/nope.txt"}, "file_not_found"
    )
    await rpc.failed(py_session, {"type": "read_file", "path": workdir}, "not_a_regular_file")
    await rpc.failed(py_session, {"type": "read_file", "path": "/tmp"}, "not_a_regular_file")


# --------------------------------------------------------------------------- directories


async def test_create_directory(rpc: RpcClient, py_session: str, workdir: str) -> None:
    path = f"{workdir}/a/b/c"
    assert await rpc.ok(py_session, {"type": "create_directory", "path": path}) == {"path": path}
    # existing directory: still fine
    assert await rpc.ok(py_session, {"type": "create_directory", "path": path}) == {"path": path}
    test = await rpc.ok(
        py_session, {"type": "execute_shell", "commandName": "test", "args": ["-d", path]}
    )
    assert test["exitCode"] == 0
    # a file in the way is not a directory
    await write(rpc, py_session, f"{workdir}/file", "x")
    envelope = await rpc.execute(
        py_session, {"type": "create_directory", "path": f"{workdir}/file"}
    )
    assert envelope["success"] is False
    assert envelope["error"].split(":")[0] in ("file_exists", "not_a_directory"), envelope


async def test_list_directory(rpc: RpcClient, py_session: str, workdir: str) -> None:
    await write(rpc, py_session, f"{workdir}/b.txt", "bbb")
    await write(rpc, py_session, f"{workdir}/a.txt", "a")
    await write(rpc, py_session, f"{workdir}/.hidden", "h")
    await write(rpc, py_session, f"{workdir}/sub/c.txt", "cc")
    await write(rpc, py_session, f"{workdir}/sub/.h2", "")
    await rpc.sh(py_session, f"ln -s a.txt {workdir}/link")

    flat = await rpc.ok(py_session, {"type": "list_directory", "path": workdir})
    assert flat["path"] == workdir
    entries = flat["entries"]
    assert [entry["name"] for entry in entries] == ["a.txt", "b.txt", "link", "sub"]
    assert [entry["path"] for entry in entries] == sorted(entry["path"] for entry in entries)
    by_name = {entry["name"]: entry for entry in entries}
    for entry in entries:
        assert set(entry) >= ENTRY_FIELDS, entry
        assert entry["path"] == f"{workdir}/{entry['name']}"
        assert ISO_UTC.match(entry["modifiedAt"]), entry
    assert by_name["a.txt"]["type"] == "file"
    assert by_name["a.txt"]["size"] == 1
    assert by_name["b.txt"]["size"] == 3
    assert by_name["sub"]["type"] == "directory"
    assert by_name["link"]["type"] == "symlink"

    hidden = await rpc.ok(
        py_session, {"type": "list_directory", "path": workdir, "includeHidden": True}
    )
    assert [entry["name"] for entry in hidden["entries"]] == [
        ".hidden",
        "a.txt",
        "b.txt",
        "link",
        "sub",
    ]

    deep = await rpc.ok(py_session, {"type": "list_directory", "path": workdir, "recursive": True})
    assert [entry["path"] for entry in deep["entries"]] == [
        f"{workdir}/{name}" for name in ("a.txt", "b.txt", "link", "sub", "sub/c.txt")
    ]
    assert deep["entries"][-1]["name"] == "c.txt"
    assert deep["entries"][-1]["size"] == 2

    everything = await rpc.ok(
        py_session,
        {"type": "list_directory", "path": workdir, "recursive": True, "include_hidden": True},
    )
    assert [entry["path"] for entry in everything["entries"]] == [
        f"{workdir}/{name}"
        for name in (".hidden", "a.txt", "b.txt", "link", "sub", "sub/.h2", "sub/c.txt")
    ]


async def test_list_defaults_to_workspace(rpc: RpcClient, py_session: str, workdir: str) -> None:
    listing = await rpc.ok(py_session, {"type": "list_directory"})
    assert listing["path"] == "/workspace"
    names = [entry["name"] for entry in listing["entries"]]
    assert workdir.rsplit("/", 1)[1] in names
    assert names == sorted(names)
    tmp = await rpc.ok(py_session, {"type": "list_directory", "path": "/tmp"})
    assert tmp["path"] == "/tmp"


async def test_list_failures(rpc: RpcClient, py_session: str, workdir: str) -> None:
    await write(rpc, py_session, f"{workdir}/plain", "x")
    await rpc.failed(
        py_session, {"type": "list_directory", "path": f"{workdir}/plain"}, "not_a_directory"
    )
    await rpc.failed(
        py_session, {"type": "list_directory", "path": f"{workdir}/missing"}, "file_not_found"
    )


# --------------------------------------------------------------------------- copy / delete


async def test_copy_file(rpc: RpcClient, py_session: str, workdir: str) -> None:
    await write(rpc, py_session, f"{workdir}/src.txt", "source text")
    copied = await rpc.ok(
        py_session,
        {"type": "copy_file", "source": f"{workdir}/src.txt", "destination": f"{workdir}/dst.txt"},
    )
    assert copied == {
        "source": f"{workdir}/src.txt",
        "destination": f"{workdir}/dst.txt",
        "bytes": 11,
    }
    assert (await read(rpc, py_session, f"{workdir}/dst.txt"))["content"] == "source text"

    # the legacy spelling, and overwrite defaults to true
    await write(rpc, py_session, f"{workdir}/src.txt", "second")
    again = await rpc.ok(
        py_session,
        {
            "type": "copy_file",
            "sourcePath": f"{workdir}/src.txt",
            "destinationPath": f"{workdir}/dst.txt",
        },
    )
    assert again["bytes"] == 6
    assert (await read(rpc, py_session, f"{workdir}/dst.txt"))["content"] == "second"

    # overwrite false keeps the destination
    await write(rpc, py_session, f"{workdir}/src.txt", "third")
    await rpc.failed(
        py_session,
        {
            "type": "copy_file",
            "source": f"{workdir}/src.txt",
            "destination": f"{workdir}/dst.txt",
            "overwrite": False,
        },
        "file_exists",
    )
    assert (await read(rpc, py_session, f"{workdir}/dst.txt"))["content"] == "second"

    # overwrite false to a new name works
    fresh = await rpc.ok(
        py_session,
        {
            "type": "copy_file",
            "source": f"{workdir}/src.txt",
            "destination": f"{workdir}/fresh.txt",
            "overwrite": False,
        },
    )
    assert fresh["bytes"] == 5

    # binary content survives a copy
    data = bytes(range(256))
    await write(
        rpc, py_session, f"{workdir}/bin", base64.b64encode(data).decode(), encoding="base64"
    )
    await rpc.ok(
        py_session,
        {"type": "copy_file", "source": f"{workdir}/bin", "destination": f"{workdir}/bin2"},
    )
    got = await read(rpc, py_session, f"{workdir}/bin2", encoding="base64")
    assert base64.b64decode(got["content"]) == data

    await rpc.failed(
        py_session,
        {"type": "copy_file", "source": f"{workdir}/missing", "destination": f"{workdir}/x"},
        "file_not_found",
    )


async def test_delete_file(rpc: RpcClient, py_session: str, workdir: str) -> None:
    path = f"{workdir}/gone.txt"
    await write(rpc, py_session, path, "bye")
    assert await rpc.ok(py_session, {"type": "delete_file", "path": path}) == {
        "path": path,
        "deleted": True,
    }
    await rpc.failed(py_session, {"type": "read_file", "path": path}, "file_not_found")
    await rpc.failed(py_session, {"type": "delete_file", "path": path}, "file_not_found")

    # an empty directory goes without recursive
    await rpc.ok(py_session, {"type": "create_directory", "path": f"{workdir}/empty"})
    await rpc.ok(py_session, {"type": "delete_file", "path": f"{workdir}/empty"})

    # a non-empty one needs recursive, and is untouched without it
    await write(rpc, py_session, f"{workdir}/full/inner/f.txt", "f")
    await rpc.failed(
        py_session, {"type": "delete_file", "path": f"{workdir}/full"}, "directory_not_empty"
    )
    assert (await read(rpc, py_session, f"{workdir}/full/inner/f.txt"))["content"] == "f"
    deleted = await rpc.ok(
        py_session, {"type": "delete_file", "path": f"{workdir}/full", "recursive": True}
    )
    assert deleted == {"path": f"{workdir}/full", "deleted": True}
    await rpc.failed(
        py_session, {"type": "list_directory", "path": f"{workdir}/full"}, "file_not_found"
    )


# --------------------------------------------------------------------------- path rules

OUTSIDE = [
    "../../etc/passwd",
    "/etc/passwd",
    "/workspace/../etc/passwd",
    "/workspace/../etc",
    "/",
    "/proc/1/environ",
    "/tmp/../etc/shadow",
    "/workspacex/file",
]


@pytest.mark.parametrize("path", OUTSIDE)
async def test_paths_outside_are_rejected(
    rpc: RpcClient, py_session: str, workdir: str, path: str
) -> None:
    await write(rpc, py_session, f"{workdir}/inside.txt", "inside")
    commands: list[dict[str, Any]] = [
        {"type": "read_file", "path": path},
        {"type": "write_file", "path": path, "content": "pwned"},
        {"type": "write_file", "path": path, "content": "pwned", "mode": "Append"},
        {"type": "list_directory", "path": path},
        {"type": "create_directory", "path": path},
        {"type": "delete_file", "path": path, "recursive": True},
        {"type": "copy_file", "source": path, "destination": "/tmp/copied-out"},
        {"type": "copy_file", "source": f"{workdir}/inside.txt", "destination": path},
        {"type": "execute_shell", "commandName": "pwd", "workingDirectory": path},
    ]
    for command in commands:
        await rpc.failed(py_session, command, "path_outside_workspace")
    await rpc.failed(py_session, {"type": "read_file", "path": "/tmp/copied-out"}, "file_not_found")


async def test_symlink_escapes_are_rejected(rpc: RpcClient, py_session: str, workdir: str) -> None:
    before = await rpc.ok(
        py_session, {"type": "execute_shell", "commandName": "sha256sum", "args": ["/etc/passwd"]}
    )
    await write(rpc, py_session, f"{workdir}/real.txt", "inside")
    setup = await rpc.sh(
        py_session,
        f"ln -s /etc {workdir}/link && ln -s /etc/passwd {workdir}/pw"
        f" && ln -s /dev/shm {workdir}/shm && ln -s /etc/../workspace {workdir}/back",
    )
    assert setup["success"], setup

    escapes = [
        {"type": "read_file", "path": f"{workdir}/link/passwd"},
        {"type": "read_file", "path": f"{workdir}/pw"},
        {"type": "write_file", "path": f"{workdir}/link/passwd", "content": "pwned"},
        {"type": "write_file", "path": f"{workdir}/pw", "content": "pwned", "mode": "Append"},
        {"type": "write_file", "path": f"{workdir}/shm/planted", "content": "pwned"},
        {"type": "create_directory", "path": f"{workdir}/shm/planted-dir"},
        {"type": "list_directory", "path": f"{workdir}/link"},
        {"type": "copy_file", "source": f"{workdir}/pw", "destination": f"{workdir}/stolen"},
        {"type": "copy_file", "source": f"{workdir}/real.txt", "destination": f"{workdir}/shm/x"},
        {"type": "copy_file", "source": f"{workdir}/real.txt", "destination": f"{workdir}/link/x"},
        {"type": "delete_file", "path": f"{workdir}/link/hostname"},
    ]
    for command in escapes:
        await rpc.failed(py_session, command, "path_outside_workspace")

    # nothing was read, written or planted
    after = await rpc.ok(
        py_session, {"type": "execute_shell", "commandName": "sha256sum", "args": ["/etc/passwd"]}
    )
    assert after["stdout"] == before["stdout"]
    await rpc.failed(
        py_session, {"type": "read_file", "path": f"{workdir}/stolen"}, "file_not_found"
    )
    shm = await rpc.sh(py_session, "ls -A /dev/shm")
    assert "planted" not in shm["result"]["stdout"], shm

    # a symlink that stays inside is fine
    await rpc.sh(py_session, f"ln -s real.txt {workdir}/alias.txt")
    assert (await read(rpc, py_session, f"{workdir}/alias.txt"))["content"] == "inside"
    name = workdir.removeprefix("/workspace/")
    assert (await read(rpc, py_session, f"{workdir}/back/{name}/real.txt"))["content"] == "inside"


async def test_tmp_is_allowed(rpc: RpcClient, py_session: str, workdir: str) -> None:
    name = workdir.rsplit("/", 1)[1]
    path = f"/tmp/{name}/x.txt"
    assert await write(rpc, py_session, path, "in tmp") == {"path": path, "bytes": 6}
    assert (await read(rpc, py_session, path))["content"] == "in tmp"
    listing = await rpc.ok(py_session, {"type": "list_directory", "path": f"/tmp/{name}"})
    assert [entry["path"] for entry in listing["entries"]] == [path]
    copied = await rpc.ok(
        py_session, {"type": "copy_file", "source": path, "destination": f"{workdir}/from-tmp.txt"}
    )
    assert copied["bytes"] == 6
    await rpc.ok(py_session, {"type": "delete_file", "path": f"/tmp/{name}", "recursive": True})
