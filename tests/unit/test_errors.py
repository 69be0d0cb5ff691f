import pytest
from pydantic import BaseModel, ValidationError

from codebeaker.exceptions import (
    CodeBeakerError,
    ImageMissingError,
    InvalidParamsError,
    LimitExceededError,
    SandboxError,
    SandboxUnavailableError,
    SessionNotFoundError,
    SessionTerminatedError,
    UnauthorizedError,
    UnsupportedLanguageError,
)
from codebeaker.rpc.errors import error_for


@pytest.mark.parametrize(
    ("exc", "code", "kind"),
    [
        (SessionNotFoundError("s1"), -32001, "session_not_found"),
        (SessionTerminatedError("s1", "gone"), -32002, "session_terminated"),
        (UnsupportedLanguageError("cobol", ["python"]), -32003, "unsupported_language"),
        (LimitExceededError("sessions", "full"), -32004, "limit_exceeded"),
        (SandboxUnavailableError("down"), -32005, "sandbox_unavailable"),
        (ImageMissingError("codebeaker/go:latest"), -32005, "sandbox_unavailable"),
        (UnauthorizedError("no key"), -32006, "unauthorized"),
    ],
)
def test_server_errors_have_stable_codes_and_kinds(
    exc: CodeBeakerError, code: int, kind: str
) -> None:
    error = error_for(exc)
    assert (error.code, error.data["kind"]) == (code, kind)


def test_unsupported_language_lists_the_names() -> None:
    assert error_for(UnsupportedLanguageError("x", ["go", "python"])).data["supported"] == [
        "go",
        "python",
    ]


def test_validation_errors_become_invalid_params() -> None:
    class Model(BaseModel):
        language: str

    with pytest.raises(ValidationError) as caught:
        Model.model_validate({})
    error = error_for(caught.value)
    assert error.code == -32602
    assert error.data["errors"] == [
        {"loc": ["language"], "msg": "Field required", "type": "missing"}
    ]
    assert "language" in error.message


def test_invalid_params_error_keeps_its_list() -> None:
    error = error_for(InvalidParamsError.single(["params"], "must be an object"))
    assert error.data == {
        "kind": "invalid_params",
        "errors": [{"loc": ["params"], "msg": "must be an object", "type": "value_error"}],
    }


@pytest.mark.parametrize(
    "exc", [RuntimeError("secret /etc/shadow detail"), SandboxError("docker: boom")]
)
def test_unexpected_errors_hide_details_behind_an_id(exc: Exception) -> None:
    error = error_for(exc)
    assert error.code == -32603
    assert error.message == "Internal error"
    assert len(error.data["errorId"]) == 16
    assert "secret" not in str(error.to_wire())


def test_errors_also_inherit_builtin_types() -> None:
    assert isinstance(SessionNotFoundError("x"), KeyError)
    assert str(SessionNotFoundError("x")) == "session not found: x"
    assert isinstance(SandboxUnavailableError("x"), ConnectionError)
