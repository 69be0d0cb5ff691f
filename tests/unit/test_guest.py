"""The guest helper's file operations, run here on the host's /tmp (an allowed root)."""

import base64
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from codebeaker.sandbox import guest


@pytest.fixture
def root() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(dir="/tmp") as directory:
        yield Path(directory)


def call(op: str, **params: object) -> dict[str, Any]:
    return guest.handle({"op": op, **params})


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_write_read_round_trip_is_binary_safe(root: Path) -> None:
    data = bytes(range(256))
    path = str(root / "sub" / "bin.dat")
    assert call("write", path=path, content=b64(data), mode="Create") == {
        "ok": True,
        "path": path,
        "bytes": 256,
    }
    reply = call("read", path=path, max_bytes=1000)
    assert base64.b64decode(str(reply["content"])) == data
    assert reply["truncated"] is False


def test_modes(root: Path) -> None:
    path = str(root / "f.txt")
    call("write", path=path, content=b64(b"a"), mode="Create")
    call("write", path=path, content=b64(b"b"), mode="Append")
    assert (root / "f.txt").read_bytes() == b"ab"
    reply = call("write", path=path, content=b64(b"c"), mode="CreateNew")
    assert (reply["ok"], reply["kind"]) == (False, "file_exists")


def test_read_truncates_at_max_bytes(root: Path) -> None:
    (root / "big").write_bytes(b"x" * 100)
    reply = call("read", path=str(root / "big"), max_bytes=10)
    assert (reply["bytes"], reply["size"], reply["truncated"]) == (10, 100, True)


def test_symlink_out_of_the_roots_is_refused(root: Path) -> None:
    os.symlink("/etc", root / "link")
    attempts: list[tuple[str, dict[str, Any]]] = [
        ("read", {"path": str(root / "link" / "hostname"), "max_bytes": 10}),
        ("write", {"path": str(root / "link" / "x"), "content": "", "mode": "Create"}),
        ("list", {"path": str(root / "link"), "recursive": False, "include_hidden": False}),
    ]
    for op, params in attempts:
        reply = call(op, **params)
        assert (reply["ok"], reply["kind"]) == (False, "path_outside_workspace"), op


def test_delete_removes_a_symlink_not_its_target(root: Path) -> None:
    (root / "target").write_text("keep")
    os.symlink(root / "target", root / "alias")
    assert call("delete", path=str(root / "alias"), recursive=False)["ok"] is True
    assert (root / "target").read_text() == "keep"


def test_delete_needs_recursive_for_a_full_directory(root: Path) -> None:
    (root / "d").mkdir()
    (root / "d" / "f").write_text("x")
    reply = call("delete", path=str(root / "d"), recursive=False)
    assert reply["kind"] == "directory_not_empty"
    assert call("delete", path=str(root / "d"), recursive=True)["ok"] is True
    assert not (root / "d").exists()


def test_errors_have_stable_kinds(root: Path) -> None:
    assert call("read", path=str(root / "nope"), max_bytes=1)["kind"] == "file_not_found"
    assert call("read", path=str(root), max_bytes=1)["kind"] == "not_a_regular_file"
    (root / "file").write_text("x")
    assert call("mkdir", path=str(root / "file"))["kind"] == "not_a_directory"
    assert call("delete", path="/tmp", recursive=True)["kind"] == "permission_denied"
    assert call("bogus")["kind"] == "bad_request"


def test_list_is_sorted_and_hides_dotfiles(root: Path) -> None:
    (root / "b").mkdir()
    (root / "b" / "inner.txt").write_text("12345")
    (root / "a.txt").write_text("1")
    (root / ".hidden").write_text("")
    flat = call("list", path=str(root), recursive=False, include_hidden=False)
    assert [e["name"] for e in flat["entries"]] == ["a.txt", "b"]
    deep = call("list", path=str(root), recursive=True, include_hidden=True)
    entries = {e["name"]: e for e in deep["entries"]}
    assert set(entries) == {".hidden", "a.txt", "b", "inner.txt"}
    assert entries["inner.txt"]["size"] == 5
    assert entries["b"]["type"] == "directory"
    assert str(entries["a.txt"]["modifiedAt"]).endswith("Z")


def test_copy_into_a_directory_and_overwrite_rule(root: Path) -> None:
    (root / "src.txt").write_text("data")
    (root / "dest").mkdir()
    reply = call(
        "copy", source=str(root / "src.txt"), destination=str(root / "dest"), overwrite=True
    )
    assert reply["destination"] == str(root / "dest" / "src.txt")
    assert reply["bytes"] == 4
    again = call(
        "copy", source=str(root / "src.txt"), destination=str(root / "dest"), overwrite=False
    )
    assert again["kind"] == "file_exists"


def strict_json(reply: dict[str, Any]) -> dict[str, Any]:
    """The reply as a strict parser sees it: UTF-8 JSON text with no lone surrogate."""
    text = json.dumps(reply, ensure_ascii=False).encode("utf-8")  # raises on a surrogate
    parsed: dict[str, Any] = json.loads(text)
    return parsed


def test_a_name_that_is_not_utf8_gets_a_replacement_name_and_its_raw_bytes(root: Path) -> None:
    raw = os.fsencode(root) + b"/\xff\xfe.txt"
    os.close(os.open(raw, os.O_CREAT | os.O_WRONLY))
    (root / "plain.txt").write_text("")
    reply = strict_json(call("list", path=str(root), recursive=False, include_hidden=False))
    entries = {entry["name"]: entry for entry in reply["entries"]}
    odd = entries["\ufffd\ufffd.txt"]
    assert base64.b64decode(odd["nameBase64"]) == b"\xff\xfe.txt"
    assert base64.b64decode(odd["pathBase64"]) == raw
    assert odd["path"] == f"{root}/\ufffd\ufffd.txt"
    assert set(entries["plain.txt"]) == {"name", "path", "type", "size", "modifiedAt"}
    assert "pathBase64" not in reply


def test_every_path_the_guest_echoes_is_valid_utf8(root: Path) -> None:
    odd_dir = os.fsencode(root) + b"/d\x80"
    os.mkdir(odd_dir)
    os.symlink(odd_dir, root / "link")  # a valid name leading to one that is not
    written = strict_json(call("write", path=str(root / "link" / "f"), content="", mode="Create"))
    assert written["path"] == f"{root}/d\ufffd/f"
    assert base64.b64decode(written["pathBase64"]) == odd_dir + b"/f"
    listed = strict_json(call("list", path=str(root / "link"), recursive=True, include_hidden=True))
    assert base64.b64decode(listed["pathBase64"]) == odd_dir
    assert [entry["name"] for entry in listed["entries"]] == ["f"]
    assert "nameBase64" not in listed["entries"][0]
    copied = strict_json(
        call("copy", source=str(root / "link" / "f"), destination=str(root / "g"), overwrite=True)
    )
    assert base64.b64decode(copied["sourceBase64"]) == odd_dir + b"/f"
    assert "destinationBase64" not in copied
    missing = strict_json(call("read", path=str(root / "link" / "nope"), max_bytes=1))
    assert (missing["kind"], missing["message"]) == ("file_not_found", f"{root}/d\ufffd/nope")


def test_portable_leaves_valid_text_alone_and_never_raises() -> None:
    assert guest.portable({"path": "/tmp/é", "n": 1}) == {"path": "/tmp/é", "n": 1}
    odd = guest.portable({"path": "/tmp/\ud800"})  # not a decoded byte: kept as its bytes
    assert odd["path"] == "/tmp/\ufffd\ufffd\ufffd"
    assert base64.b64decode(odd["pathBase64"]) == b"/tmp/\xed\xa0\x80"
