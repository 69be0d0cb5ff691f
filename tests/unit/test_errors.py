import pytest
from codebeaker_client.models import COMMAND, RunRequest
from pydantic import BaseModel, TypeAdapter, ValidationError

from codebeaker.api.wire import dumps, field_errors, parse
from codebeaker.errors import describe, problem_for, rpc_error
from codebeaker.exceptions import (
    CodeBeakerError,
    CommandFailedError,
    ContainerGoneError,
    ExecutionFinishedError,
    ExecutionNotFoundError,
    ImageMissingError,
    InputClosedError,
    InvalidParamsError,
    LimitExceededError,
    MalformedRequestError,
    PayloadTooLargeError,
    SandboxError,
    SandboxUnavailableError,
    SessionNotFoundError,
    SessionTerminatedError,
    UnauthorizedError,
    UnsupportedLanguageError,
)
from codebeaker.settings import Settings

GENERIC_UNAVAILABLE = "the sandbox engine cannot be reached; try again later"


@pytest.mark.parametrize(
    ("exc", "code", "status", "kind"),
    [
        (MalformedRequestError("not JSON"), -32700, 400, "parse_error"),
        (SessionNotFoundError("s1"), -32001, 404, "session_not_found"),
        (SessionTerminatedError("s1", "gone"), -32002, 410, "session_terminated"),
        (UnsupportedLanguageError("cobol", ["python"]), -32003, 422, "unsupported_language"),
        (PayloadTooLargeError("body_size", 1024), -32004, 413, "limit_exceeded"),
        (LimitExceededError("sessions", "full"), -32004, 429, "limit_exceeded"),
        (SandboxUnavailableError(GENERIC_UNAVAILABLE), -32005, 503, "sandbox_unavailable"),
        (ImageMissingError("codebeaker/go:latest"), -32005, 503, "sandbox_unavailable"),
        (UnauthorizedError("no key"), -32006, 401, "unauthorized"),
        (InputClosedError("s1"), -32007, 409, "input_closed"),
        (ExecutionNotFoundError("e1"), -32008, 404, "execution_not_found"),
        (ExecutionFinishedError("e1", "completed"), -32009, 409, "execution_finished"),
    ],
)
def test_server_errors_have_stable_codes_statuses_and_kinds(
    exc: CodeBeakerError, code: int, status: int, kind: str
) -> None:
    described = describe(exc)
    assert (described.code, described.status, described.data.kind) == (code, status, kind)
    error = rpc_error(exc)
    assert (error.code, error.data.kind) == (code, kind)
    assert error.message == exc.message


def test_unsupported_language_lists_the_names() -> None:
    data = rpc_error(UnsupportedLanguageError("x", ["go", "python"])).data
    assert data.supported == ["go", "python"]
    assert data.to_wire() == {"kind": "unsupported_language", "supported": ["go", "python"]}


def test_limit_exceeded_names_the_limit_and_when_to_retry() -> None:
    data = rpc_error(LimitExceededError("runs", "busy", retry_after=1.5)).data
    assert data.to_wire() == {"kind": "limit_exceeded", "limit": "runs", "retryAfter": 1.5}


@pytest.mark.parametrize(
    ("kind", "status"),
    [
        ("file_not_found", 404),
        ("path_outside_workspace", 422),
        ("file_too_large", 413),
        ("permission_denied", 403),
        ("agent_lost", 503),
        ("nonzero_exit", 409),
    ],
)
def test_command_failures_keep_their_kind(kind: str, status: int) -> None:
    described = describe(CommandFailedError(kind, "a.txt"))
    assert (described.code, described.status, described.data.kind) == (-32602, status, kind)
    assert described.message == f"{kind}: a.txt"


def test_a_path_outside_the_workspace_names_the_path_field() -> None:
    data = describe(CommandFailedError("path_outside_workspace", "../etc")).data
    assert data.errors is not None
    assert [error.loc for error in data.errors] == [["path"]]


def test_problem_documents_carry_status_title_and_kind() -> None:
    described = describe(SessionNotFoundError("s1"))
    body = problem_for(described.status, described.message, described.data)
    assert body.to_wire() == {
        "type": "about:blank",
        "title": "Not Found",
        "status": 404,
        "detail": "session not found: s1",
        "kind": "session_not_found",
    }


class Model(BaseModel):
    language: str


def test_parse_turns_a_validation_error_into_invalid_params_naming_the_fields() -> None:
    with pytest.raises(InvalidParamsError) as caught:
        parse(Model, {}, Settings())
    assert caught.value.errors == [
        {"loc": ["language"], "msg": "Field required", "type": "missing"}
    ]
    error = rpc_error(caught.value)
    assert error.code == -32602
    assert error.data.to_wire()["errors"] == caught.value.errors
    assert "language" in error.message
    assert describe(caught.value).status == 422
    assert caught.value.__cause__ is None  # pydantic's error (with the input) is not chained
    assert parse(Model, {"language": "go"}, Settings()) == Model(language="go")


def test_parse_reads_json_text_and_type_adapters_with_the_server_limits() -> None:
    settings = Settings()
    text = '{"language": "python", "code": "", "timeoutSeconds": 5}'
    assert parse(RunRequest, text, settings, json=True).timeout_seconds == 5
    over = f'{{"language": "python", "code": "", "timeoutSeconds": {10**6}}}'
    with pytest.raises(InvalidParamsError) as caught:
        parse(RunRequest, over, settings, json=True)
    assert [error["loc"] for error in caught.value.errors] == [["timeoutSeconds"]]
    with pytest.raises(InvalidParamsError) as caught:
        parse(RunRequest, "{not json", settings, json=True)
    assert [error["type"] for error in caught.value.errors] == ["json_invalid"]
    with pytest.raises(InvalidParamsError) as caught:
        parse(COMMAND, {"type": "read_file"}, settings)
    assert [error["loc"] for error in caught.value.errors] == [["read_file", "path"]]
    adapter = TypeAdapter(int)
    assert parse(adapter, "7", settings, json=True) == 7


def test_field_errors_keep_only_loc_msg_and_type() -> None:
    with pytest.raises(ValidationError) as caught:
        Model.model_validate({"language": 5})
    assert field_errors(caught.value.errors()) == [
        {"loc": ["language"], "msg": "Input should be a valid string", "type": "string_type"}
    ]


def test_a_bare_validation_error_is_ours_an_internal_error() -> None:
    """Client input goes through ``parse``; a model the server builds wrongly is a bug."""
    with pytest.raises(ValidationError) as caught:
        Model.model_validate({})
    error = rpc_error(caught.value)
    assert (error.code, error.message, error.data.kind) == (
        -32603,
        "Internal error",
        "internal_error",
    )
    assert error.data.error_id is not None
    assert "language" not in str(error.to_wire())
    assert describe(caught.value).status == 500


def test_an_unreachable_engine_is_told_generically() -> None:
    detail = "Cannot connect to unix:///var/run/secret-docker.sock: connection refused"
    described = describe(SandboxUnavailableError(detail))
    assert (described.code, described.status) == (-32005, 503)
    assert described.message == GENERIC_UNAVAILABLE
    assert described.data.to_wire() == {"kind": "sandbox_unavailable"}
    assert "secret" not in rpc_error(SandboxUnavailableError(detail)).message
    image = describe(ImageMissingError("codebeaker/go:latest"))  # not the engine: named
    assert image.status == 503
    assert "codebeaker/go:latest" in image.message


def test_dumps_is_compact_ascii_and_keeps_lone_surrogates_escaped() -> None:
    text = dumps({"name": "\udcff\u00e9", "n": [1, 2]})
    assert text == '{"name":"\\udcff\\u00e9","n":[1,2]}'
    text.encode("ascii")


def test_invalid_params_error_keeps_its_list() -> None:
    error = rpc_error(InvalidParamsError.single(["params"], "must be an object"))
    assert error.data.to_wire() == {
        "kind": "invalid_params",
        "errors": [{"loc": ["params"], "msg": "must be an object", "type": "value_error"}],
    }


@pytest.mark.parametrize(
    "exc",
    [
        RuntimeError("secret /etc/shadow detail"),
        SandboxError("docker: boom"),
        ContainerGoneError("c" * 64, "boom"),
    ],
)
def test_unexpected_errors_hide_details_behind_an_id(exc: Exception) -> None:
    error = rpc_error(exc)
    assert error.code == -32603
    assert error.message == "Internal error"
    assert error.data.error_id is not None
    assert len(error.data.error_id) == 16
    assert "secret" not in str(error.to_wire())
    assert "boom" not in str(error.to_wire())
    assert describe(exc).status == 500


def test_errors_also_inherit_builtin_types() -> None:
    assert isinstance(SessionNotFoundError("x"), KeyError)
    assert str(SessionNotFoundError("x")) == "session not found: x"
    assert isinstance(SandboxUnavailableError("x"), ConnectionError)
