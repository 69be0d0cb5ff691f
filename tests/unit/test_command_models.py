import base64
from typing import Any

import pytest
from codebeaker_client.models.commands import (
    Command,
    CopyFile,
    CreateDirectory,
    ExecuteShell,
    ListDirectory,
    ReadFile,
    WriteFile,
)
from pydantic import TypeAdapter, ValidationError

from codebeaker.api.wire import context_for
from codebeaker.settings import Settings

ADAPTER: TypeAdapter[Any] = TypeAdapter(Command)
SETTINGS = Settings(max_command_timeout_seconds=60, read_file_limit_bytes=4096)


def parse(data: dict[str, Any]) -> Any:
    return ADAPTER.validate_python(data, context=context_for(SETTINGS))


def errors(data: dict[str, Any]) -> list[Any]:
    with pytest.raises(ValidationError) as caught:
        parse(data)
    return caught.value.errors()


def test_type_may_come_last() -> None:
    command = parse({"path": "a.txt", "content": "x", "type": "write_file"})
    assert isinstance(command, WriteFile)
    assert command.mode == "Create"


def test_legacy_aliases_map_to_the_spec_commands() -> None:
    shell = parse({"type": "shell", "command": "ls", "args": ["-l"]})
    assert isinstance(shell, ExecuteShell)
    assert shell.command_name == "ls"
    assert isinstance(parse({"type": "create_dir", "path": "d"}), CreateDirectory)
    assert isinstance(parse({"type": "list_files"}), ListDirectory)
    copy = parse({"type": "copy_file", "sourcePath": "a", "destinationPath": "b"})
    assert isinstance(copy, CopyFile)
    assert (copy.source, copy.destination, copy.overwrite) == ("a", "b", True)


def test_overwrite_is_create() -> None:
    assert parse({"type": "write_file", "path": "a", "content": "", "mode": "Overwrite"}).mode == (
        "Create"
    )


def test_snake_case_is_accepted() -> None:
    shell = parse(
        {
            "type": "execute_shell",
            "command_name": "ls",
            "working_directory": "/tmp",
            "timeout_seconds": 2,
        }
    )
    assert (shell.working_directory, shell.timeout_seconds) == ("/tmp", 2)


def test_unknown_type_names_the_command_field() -> None:
    (error,) = errors({"type": "format_disk"})
    assert error["type"] == "union_tag_invalid"


def test_missing_and_unknown_fields_are_named() -> None:
    found = {tuple(e["loc"]) for e in errors({"type": "write_file", "content": "x", "colour": 1})}
    assert ("write_file", "path") in found
    assert ("write_file", "colour") in found


def test_bad_base64_is_a_content_error() -> None:
    (error,) = errors({"type": "write_file", "path": "a", "content": "@@@", "encoding": "base64"})
    assert error["loc"] == ("write_file", "content")


def test_base64_content_decodes_to_bytes() -> None:
    raw = bytes(range(256))
    command = parse(
        {
            "type": "write_file",
            "path": "b",
            "content": base64.b64encode(raw).decode(),
            "encoding": "base64",
        }
    )
    assert command.data() == raw


def test_limits_come_from_the_settings() -> None:
    (error,) = errors({"type": "execute_shell", "commandName": "sleep", "timeoutSeconds": 61})
    assert error["loc"] == ("execute_shell", "timeoutSeconds")
    (error,) = errors({"type": "read_file", "path": "a", "maxBytes": 4097})
    assert error["loc"] == ("read_file", "maxBytes")
    assert isinstance(parse({"type": "read_file", "path": "a", "maxBytes": 4096}), ReadFile)


@pytest.mark.parametrize(
    "command",
    [
        {"type": "execute_shell", "commandName": "a\0b"},
        {"type": "execute_shell", "commandName": "env", "env": {"A=B": "x"}},
        {"type": "execute_shell", "commandName": "env", "env": {"A": 1}},
        {"type": "execute_shell", "commandName": ""},
        {"type": "read_file", "path": ""},
        {"type": "execute_shell", "commandName": "x", "timeoutSeconds": 0},
        {"type": "write_file", "path": "a", "content": "x", "mode": "Sideways"},
    ],
)
def test_bad_values_are_rejected(command: dict[str, Any]) -> None:
    assert errors(command)
