"""The interactive doors' messages: parsing with the server's limits, failing closed, the
one-line error texts, and how ``compile_cmd`` / ``command`` become argv."""

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from codebeaker.api.live import (
    CLIENT_MESSAGE,
    CodeMessage,
    CompileErrorMessage,
    EofMessage,
    ExitCodeMessage,
    ExitMessage,
    InputMessage,
    KillMessage,
    PendingRunRequest,
)
from codebeaker.api.wire import parse
from codebeaker.errors import error_text
from codebeaker.exceptions import (
    InvalidParamsError,
    LimitExceededError,
    ProgramExitedError,
    RunNotFoundError,
    ShuttingDownError,
    UnsupportedLanguageError,
)
from codebeaker.service import _words
from codebeaker.settings import Settings
from codebeaker.tenants import LOCAL, Tenant
from tests.unit.fakes import FakeService

SETTINGS = Settings(max_source_bytes=1024, max_input_bytes=16, run_input_limit_bytes=1024)
E_ACUTE = "\N{LATIN SMALL LETTER E WITH ACUTE}"  # two bytes in UTF-8


def client(data: Any) -> Any:
    return parse(CLIENT_MESSAGE, data, SETTINGS)


def refusal(data: Any) -> InvalidParamsError:
    with pytest.raises(InvalidParamsError) as caught:
        client(data)
    return caught.value


def code(**fields: Any) -> dict[str, Any]:
    return {"type": "code", "language": "c", "source": "int main(){}", **fields}


def as_the_socket_says(exc: InvalidParamsError) -> str:
    """What framing A sends: the message's own type is dropped from each location."""
    errors = [{**error, "loc": error["loc"][1:] or error["loc"]} for error in exc.errors]
    return error_text(InvalidParamsError(errors))


# ------------------------------------------------------------------ client messages


def test_each_client_message_parses_from_text() -> None:
    message = parse(
        CLIENT_MESSAGE,
        '{"type":"code","language":"c","filename":"prog.c","source":"x",'
        '"compile_cmd":"gcc prog.c -o prog","command":"./prog"}',
        SETTINGS,
        json=True,
    )
    assert isinstance(message, CodeMessage)
    assert message.to_wire() == {
        "type": "code",
        "language": "c",
        "filename": "prog.c",
        "source": "x",
        "compile_cmd": "gcc prog.c -o prog",
        "command": "./prog",
    }
    entered = client({"type": "input", "data": "42\n"})
    assert (type(entered), entered.data) == (InputMessage, "42\n")
    assert client({"type": "eof"}) == EofMessage(type="eof")
    assert client({"type": "kill"}) == KillMessage(type="kill")
    optional = client(code())
    assert (optional.filename, optional.compile_cmd, optional.command) == (None, None, None)


def test_an_unknown_type_is_refused_naming_the_allowed_types() -> None:
    text = error_text(refusal({"type": "run", "source": "x"}))
    assert text.startswith("invalid_params: message: ")
    assert "'run'" in text
    assert "'code', 'input', 'eof', 'kill'" in text


@pytest.mark.parametrize("data", [{"data": "x"}, "code", ["code"], None, 42])
def test_a_message_without_a_type_is_refused(data: Any) -> None:
    assert error_text(refusal(data)).startswith("invalid_params: message: ")


def test_a_missing_source_is_named() -> None:
    exc = refusal({"type": "code", "language": "c"})
    assert [(e["loc"], e["type"]) for e in exc.errors] == [(["code", "source"], "missing")]
    assert error_text(exc) == "invalid_params: code.source: Field required"
    assert as_the_socket_says(exc) == "invalid_params: source: Field required"


def test_every_bad_field_is_named_in_one_line() -> None:
    exc = refusal({"type": "code", "language": "", "filename": "a/b", "extra": 1})
    assert as_the_socket_says(exc) == (
        "invalid_params: language: String should have at least 1 character; "
        "source: Field required; "
        "filename: must be a plain file name, without a directory; "
        "extra: Extra inputs are not permitted"
    )


@pytest.mark.parametrize("filename", ["a/b.c", "/etc/passwd", "../main.c", "..", ".", "dir/"])
def test_a_filename_with_a_directory_is_refused(filename: str) -> None:
    exc = refusal(code(filename=filename))
    assert as_the_socket_says(exc) == (
        "invalid_params: filename: must be a plain file name, without a directory"
    )


@pytest.mark.parametrize("filename", ["main.c", "Main.java", "...", "a..c", "prog file.c"])
def test_a_plain_filename_is_accepted(filename: str) -> None:
    assert client(code(filename=filename)).filename == filename


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"filename": "ma\0in.c"}, "filename"),
        ({"filename": ""}, "filename"),
        ({"filename": "x" * 256}, "filename"),
        ({"command": "./ma\0in"}, "command"),
        ({"compile_cmd": ""}, "compile_cmd"),
        ({"command": "x" * 4097}, "command"),
        ({"language": "x" * 65}, "language"),
    ],
)
def test_bad_names_and_command_lines_are_refused(fields: dict[str, Any], field: str) -> None:
    exc = refusal(code(**fields))
    assert [error["loc"] for error in exc.errors] == [["code", field]]


def test_the_source_is_limited_in_utf8_bytes_by_the_settings() -> None:
    assert client(code(source="x" * 1024)).source == "x" * 1024
    for source in ("x" * 1025, E_ACUTE * 513):  # 513 characters, 1026 bytes
        exc = refusal(code(source=source))
        assert as_the_socket_says(exc) == (
            "invalid_params: source: must be at most 1024 bytes (server maximum)"
        )
    roomy = Settings(max_source_bytes=4096)
    accepted = parse(CLIENT_MESSAGE, code(source=E_ACUTE * 513), roomy)
    assert isinstance(accepted, CodeMessage)
    assert accepted.source == E_ACUTE * 513


def test_input_is_limited_in_utf8_bytes_by_the_settings() -> None:
    assert client({"type": "input", "data": "x" * 16}).data == "x" * 16
    assert client({"type": "input", "data": E_ACUTE * 8}).data == E_ACUTE * 8
    for data in ("x" * 17, E_ACUTE * 9):
        exc = refusal({"type": "input", "data": data})
        assert as_the_socket_says(exc) == (
            "invalid_params: data: must be at most 16 bytes (server maximum)"
        )


def test_a_pending_run_request_is_limited_by_the_settings() -> None:
    request = parse(
        PendingRunRequest, {"language": "python", "code": "x", "stdin": "1\n"}, SETTINGS
    )
    assert (request.code, request.stdin) == ("x", "1\n")
    with pytest.raises(InvalidParamsError) as caught:
        parse(PendingRunRequest, {"language": "python", "code": "x" * 1025}, SETTINGS)
    assert [error["loc"] for error in caught.value.errors] == [["code"]]
    with pytest.raises(InvalidParamsError) as caught:
        parse(PendingRunRequest, {"language": "python", "code": "", "stdin": "y" * 1025}, SETTINGS)
    assert [error["loc"] for error in caught.value.errors] == [["stdin"]]
    with pytest.raises(InvalidParamsError):
        parse(PendingRunRequest, {"language": "python", "code": "", "extra": 1}, SETTINGS)


# ------------------------------------------------------------------ failing closed


@pytest.mark.parametrize(
    ("validate", "maximum"),
    [
        (lambda: CodeMessage.model_validate(code(source="x")), "max_source_bytes"),
        (lambda: CLIENT_MESSAGE.validate_python(code(source="")), "max_source_bytes"),
        (lambda: CLIENT_MESSAGE.validate_json('{"type":"input","data":""}'), "max_input_bytes"),
        (lambda: InputMessage.model_validate({"type": "input", "data": "x"}), "max_input_bytes"),
        (
            lambda: PendingRunRequest.model_validate({"language": "python", "code": "x"}),
            "max_source_bytes",
        ),
        (
            lambda: PendingRunRequest.model_validate(
                {"language": "python", "code": "x", "stdin": "y"}, context={"settings": None}
            ),
            "max_source_bytes",
        ),
    ],
)
def test_without_the_settings_a_limited_field_is_refused(validate: Any, maximum: str) -> None:
    with pytest.raises(
        ValidationError, match=f"cannot be checked against the server maximum '{maximum}'"
    ):
        validate()


def test_without_the_settings_messages_without_limited_fields_still_parse() -> None:
    assert CLIENT_MESSAGE.validate_python({"type": "eof"}) == EofMessage(type="eof")
    assert CLIENT_MESSAGE.validate_python({"type": "kill"}) == KillMessage(type="kill")


# ------------------------------------------------------------------ server messages


def test_server_messages_keep_the_seeds_names() -> None:
    assert ExitMessage(return_code=0).to_wire() == {"type": "exit", "return_code": 0}
    assert ExitMessage(return_code=124, reason="timeout").to_wire() == {
        "type": "exit",
        "return_code": 124,
        "reason": "timeout",
    }
    assert ExitCodeMessage(code=3).to_wire() == {"type": "exit", "code": 3}
    assert CompileErrorMessage(stderr="boom", return_code=1).to_wire() == {
        "type": "compile_error",
        "stderr": "boom",
        "return_code": 1,
    }


# ------------------------------------------------------------------ error texts


@pytest.mark.parametrize(
    ("exc", "text"),
    [
        (
            UnsupportedLanguageError("cobol", ["c", "python"]),
            "unsupported_language: unsupported language: 'cobol'; supported: c, python",
        ),
        (
            LimitExceededError("interactive_runs", "8 programs run and 16 wait already"),
            "limit_exceeded: 8 programs run and 16 wait already",
        ),
        (ProgramExitedError(), "input_closed: the program has exited or its input was closed"),
        (ShuttingDownError(), "shutting_down: the server is shutting down; try again shortly"),
        (
            RunNotFoundError("abc"),
            "run_not_found: no pending run 'abc': unknown, already used, or expired",
        ),
        (
            InvalidParamsError.single(["command"], "names no program"),
            "invalid_params: command: names no program",
        ),
        (
            InvalidParamsError([{"loc": [], "msg": "Value error, bad", "type": "value_error"}]),
            "invalid_params: message: bad",
        ),
    ],
)
def test_error_text_is_kind_then_what(exc: Exception, text: str) -> None:
    assert error_text(exc) == text


def test_error_text_of_the_real_registry_lists_every_language(tmp_path: Path) -> None:
    service = FakeService(Settings(data_dir=tmp_path))
    with pytest.raises(UnsupportedLanguageError) as caught:
        service.runtimes.get("cobol")
    text = error_text(caught.value)
    assert text.startswith("unsupported_language: unsupported language: 'cobol'; supported: ")
    assert (
        text.removeprefix(text[: text.index("supported: ")] + "supported: ").split(", ")
        == service.runtimes.names()
    )


def test_error_text_never_shows_an_unexpected_exceptions_details() -> None:
    assert error_text(RuntimeError("secret /var/run/docker.sock")) == (
        "internal_error: Internal error"
    )


# ------------------------------------------------------------------ command lines


def test_command_lines_split_like_shell_words() -> None:
    assert _words("gcc -o 'my prog' \"main file.c\" -lm", "compile_cmd") == (
        "gcc",
        "-o",
        "my prog",
        "main file.c",
        "-lm",
    )
    assert _words("./main; rm -rf /", "command") == ("./main;", "rm", "-rf", "/")  # no shell


@pytest.mark.parametrize("field", ["command", "compile_cmd"])
@pytest.mark.parametrize(
    ("line", "what"),
    [
        ("gcc 'main.c", "cannot be split into words: No closing quotation"),
        ('./main "x', "cannot be split into words: No closing quotation"),
        ("./main \\", "cannot be split into words: No escaped character"),
        ("", "names no program"),
        ("   \t ", "names no program"),
    ],
)
def test_a_bad_command_line_names_its_field(field: str, line: str, what: str) -> None:
    with pytest.raises(InvalidParamsError) as caught:
        _words(line, field)
    assert caught.value.errors == [{"loc": [field], "msg": what, "type": "value_error"}]
    assert error_text(caught.value) == f"invalid_params: {field}: {what}"


def test_a_code_message_becomes_a_live_spec(tmp_path: Path) -> None:
    service = FakeService(Settings(data_dir=tmp_path))
    default = service._live_spec(client(code()))
    c = service.runtimes.get("c")
    assert (default.filename, default.compile, default.command) == ("main.c", c.compile, c.run)
    renamed = service._live_spec(client(code(filename="prog.c")))
    assert renamed.filename == "prog.c"
    assert renamed.compile is not None
    assert "prog.c" in renamed.compile
    assert "main.c" not in renamed.compile
    custom = service._live_spec(
        client(code(filename="x.c", compile_cmd="cc -o 'x y' x.c", command="'./x y' arg"))
    )
    assert (custom.compile, custom.command) == (("cc", "-o", "x y", "x.c"), ("./x y", "arg"))
    assert custom.source == "int main(){}"
    assert custom.stdin == b""


@pytest.mark.parametrize(("field", "line"), [("compile_cmd", "gcc 'main.c"), ("command", "  ")])
def test_a_bad_command_line_is_refused_before_anything_runs(
    tmp_path: Path, field: str, line: str
) -> None:
    service = FakeService(Settings(data_dir=tmp_path))
    with pytest.raises(InvalidParamsError) as caught:
        service.start_run(client(code(**{field: line})), listener=None)  # type: ignore[arg-type]
    assert [error["loc"] for error in caught.value.errors] == [[field]]
    assert service.sandboxes.drivers == []


def test_an_unknown_language_is_refused_before_anything_runs(tmp_path: Path) -> None:
    service = FakeService(Settings(data_dir=tmp_path))
    with pytest.raises(UnsupportedLanguageError):
        service._live_spec(client(code(language="cobol")))


def test_a_pending_run_keeps_its_stdin_and_is_claimed_once(tmp_path: Path) -> None:
    service = FakeService(Settings(data_dir=tmp_path))
    request = parse(
        PendingRunRequest,
        {"language": "py", "code": "print(input())", "stdin": f"{E_ACUTE}\n"},
        service.settings,
    )
    created = service.create_pending_run(request, tenant=LOCAL)
    assert created.to_wire() == {"sessionId": created.session_id}
    with pytest.raises(RunNotFoundError):  # another tenant's: not found, and still there
        service.claim_pending_run(created.session_id, tenant=Tenant("alice"))
    spec = service.claim_pending_run(created.session_id, tenant=LOCAL)
    python = service.runtimes.get("python")
    assert (spec.runtime, spec.filename, spec.command) == (python, "main.py", python.run)
    assert (spec.source, spec.stdin) == ("print(input())", f"{E_ACUTE}\n".encode())
    with pytest.raises(RunNotFoundError):
        service.claim_pending_run(created.session_id, tenant=LOCAL)
