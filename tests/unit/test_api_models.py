"""The wire models of ``codebeaker.api``: round trips, names on the wire, fail-closed limits."""

from datetime import UTC, datetime
from typing import Any

import pytest
from codebeaker_client.models import (
    COMMAND,
    CommandOutcome,
    CompileResult,
    CreateSessionRequest,
    ErrorData,
    ExecuteRequest,
    ExecutionAccepted,
    ExecutionError,
    ExecutionList,
    ExecutionQuery,
    ExecutionRecord,
    ExecutionSummary,
    FieldError,
    Health,
    PoolReadiness,
    Problem,
    RunRequest,
    RunResult,
    SessionConfig,
    SessionInfo,
    SessionList,
    SessionSummary,
    WireModel,
)
from codebeaker_client.models.commands import (
    CommandResult,
    CopyFileResult,
    CreateDirectoryResult,
    DeleteFileResult,
    DirectoryEntry,
    ExecuteShell,
    ListDirectoryResult,
    ReadFile,
    ReadFileResult,
    ShellResult,
    WriteFileResult,
)
from pydantic import ValidationError

from codebeaker.api.wire import context_for
from codebeaker.settings import Settings

SETTINGS = Settings()
CONTEXT = context_for(SETTINGS)
CREATED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
LATER = datetime(2026, 1, 2, 3, 4, 9, tzinfo=UTC)
CONFIG = SessionConfig(
    idle_timeout_minutes=30, max_lifetime_minutes=120, memory_limit_mb=512, cpu_limit=1.5
)
SHELL = ShellResult(stdout="hi\n", stderr="", exit_code=0, timed_out=False, truncated=False)
RUN = RunResult(
    stdout="42\n", stderr="", exit_code=0, timed_out=False, truncated=False, duration_ms=31
)
COMPILED_RUN = RunResult(
    stdout="",
    stderr="",
    exit_code=2,
    timed_out=False,
    truncated=False,
    duration_ms=900,
    compile=CompileResult(stdout="", stderr="main.go:1: oops", exit_code=2, duration_ms=850),
)

COMMAND_RESULTS: list[CommandResult] = [
    SHELL,
    ReadFileResult(
        path="/workspace/a.txt", content="hel", bytes=3, size=5, encoding="utf8", truncated=True
    ),
    ListDirectoryResult(
        path="/workspace",
        entries=[
            DirectoryEntry(
                name="a.txt",
                path="/workspace/a.txt",
                type="file",
                size=5,
                modified_at="2026-01-02T03:04:05Z",
            ),
            DirectoryEntry(
                name="src",
                path="/workspace/src",
                type="directory",
                size=0,
                modified_at="2026-01-02T03:04:05Z",
            ),
        ],
        truncated=False,
    ),
    CopyFileResult(source="/workspace/a", destination="/workspace/b", bytes=5),
    DeleteFileResult(path="/workspace/a", deleted=True),
    WriteFileResult(path="/workspace/a", bytes=5),
    CreateDirectoryResult(path="/workspace/d"),
]

RESULT_MODELS: list[WireModel] = [
    SessionInfo(
        session_id="s1",
        container_id="c" * 64,
        language="python",
        created_at=CREATED,
        state="Active",
        config=CONFIG,
    ),
    SessionSummary(
        session_id="s1",
        container_id="c" * 64,
        language="go",
        created_at=CREATED,
        last_activity=LATER,
        state="Idle",
        execution_count=3,
        idle_minutes=1.5,
        lifetime_minutes=2.25,
    ),
    *(
        CommandOutcome(success=True, result=result, error=None, duration_ms=7)
        for result in COMMAND_RESULTS
    ),
    CommandOutcome(success=False, result=None, error="file_not_found: /workspace/x", duration_ms=1),
    RUN,
    COMPILED_RUN,
    ExecutionRecord(execution_id="e1", status="queued", language="python", created_at=CREATED),
    ExecutionRecord(
        execution_id="e2",
        status="completed",
        language="go",
        created_at=CREATED,
        started_at=CREATED,
        finished_at=LATER,
        result=COMPILED_RUN,
    ),
    ExecutionRecord(
        execution_id="e3",
        status="failed",
        language="python",
        created_at=CREATED,
        started_at=CREATED,
        finished_at=LATER,
        error=ExecutionError(kind="server_restarted", message="the server stopped"),
    ),
    ExecutionSummary(
        execution_id="e4",
        status="failed",
        language="python",
        created_at=CREATED,
        finished_at=LATER,
        error=ExecutionError(kind="invalid_params", message="Invalid params: timeoutSeconds"),
    ),
    ExecutionList(
        executions=[
            ExecutionSummary(execution_id="e5", status="queued", language="go", created_at=CREATED)
        ]
    ),
    ExecutionAccepted(execution_id="e1", status_url="/api/v1/executions/e1"),
    Problem(
        title="Not Found", status=404, detail="session not found: s1", kind="session_not_found"
    ),
    Problem(
        title="Unprocessable Content",
        status=422,
        detail="Invalid params: language",
        kind="invalid_params",
        errors=[FieldError(loc=["command", "path"], msg="Field required", type="missing")],
    ),
    Problem(
        title="Too Many Requests",
        status=429,
        detail="busy",
        kind="limit_exceeded",
        limit="runs",
        retry_after=1.0,
    ),
    Health(
        status="ok",
        docker="ok",
        sessions=2,
        pool={"python": PoolReadiness(ready=1, size=2)},
        version="0.1.0",
    ),
    Health(status="degraded", docker="unreachable", sessions=0, pool={}, version="0.1.0"),
]


@pytest.mark.parametrize("model", RESULT_MODELS, ids=lambda model: type(model).__name__)
def test_results_survive_a_round_trip(model: WireModel) -> None:
    wire = model.to_wire()
    again = type(model).model_validate(wire)
    assert again == model
    assert again.to_wire() == wire
    assert type(model).model_validate_json(model.model_dump_json()) == model


@pytest.mark.parametrize("result", COMMAND_RESULTS, ids=lambda result: type(result).__name__)
def test_an_outcome_parses_back_to_the_same_result_type(result: CommandResult) -> None:
    outcome = CommandOutcome(success=True, result=result, error=None, duration_ms=1)
    again = CommandOutcome.model_validate(outcome.to_wire())
    assert type(again.result) is type(result)


def test_compile_is_absent_from_the_wire_when_none() -> None:
    wire = RUN.to_wire()
    assert "compile" not in wire
    assert wire == {
        "stdout": "42\n",
        "stderr": "",
        "exitCode": 0,
        "timedOut": False,
        "truncated": False,
        "durationMs": 31,
    }
    assert COMPILED_RUN.to_wire()["compile"] == {
        "stdout": "",
        "stderr": "main.go:1: oops",
        "exitCode": 2,
        "durationMs": 850,
    }
    assert (
        "compile"
        not in ExecutionRecord.model_validate(
            {
                "executionId": "e",
                "status": "completed",
                "language": "python",
                "createdAt": "2026-01-02T03:04:05Z",
                "result": wire,
            }
        ).to_wire()["result"]
    )


def test_timestamps_are_utc_seconds_with_z() -> None:
    wire = RESULT_MODELS[1].to_wire()
    assert (wire["createdAt"], wire["lastActivity"]) == (
        "2026-01-02T03:04:05Z",
        "2026-01-02T03:04:09Z",
    )


def test_session_config_says_memory_limit_mb_and_never_echoes_env() -> None:
    config = SessionConfig(
        idle_timeout_minutes=30,
        max_lifetime_minutes=120,
        memory_limit_mb=256,
        cpu_limit=1,
        env={"TOKEN": "secret"},
    )
    assert config.to_wire() == {
        "idleTimeoutMinutes": 30,
        "maxLifetimeMinutes": 120,
        "memoryLimitMB": 256,
        "cpuLimit": 1,
    }
    assert SessionConfig.model_validate(config.to_wire()) == config.model_copy(update={"env": {}})
    by_name = SessionConfig.model_validate(
        {
            "idle_timeout_minutes": 30,
            "max_lifetime_minutes": 120,
            "memory_limit_mb": 256,
            "cpu_limit": 1,
        }
    )
    assert by_name.memory_limit_mb == 256


def test_error_data_leaves_out_what_it_does_not_have() -> None:
    assert ErrorData(kind="session_not_found").to_wire() == {"kind": "session_not_found"}
    data = ErrorData(kind="internal_error", error_id="0123456789abcdef")
    assert data.to_wire() == {"kind": "internal_error", "errorId": "0123456789abcdef"}


# ------------------------------------------------------------------------------- requests


@pytest.mark.parametrize("alias", ["memoryLimitMB", "memory_limit_mb", "memoryLimitMb"])
def test_memory_limit_is_accepted_under_each_name(alias: str) -> None:
    create = CreateSessionRequest.model_validate({"language": "py", alias: 128}, context=CONTEXT)
    run = RunRequest.model_validate({"language": "py", "code": "", alias: 128}, context=CONTEXT)
    assert create.memory_limit_mb == run.memory_limit_mb == 128
    assert create.to_wire()["memoryLimitMB"] == run.to_wire()["memoryLimitMB"] == 128


def test_snake_and_camel_case_give_the_same_requests() -> None:
    camel = {
        "language": "python",
        "idleTimeoutMinutes": 5,
        "maxLifetimeMinutes": 10,
        "cpuLimit": 0.5,
    }
    snake = {
        "language": "python",
        "idle_timeout_minutes": 5,
        "max_lifetime_minutes": 10,
        "cpu_limit": 0.5,
    }
    assert CreateSessionRequest.model_validate(
        camel, context=CONTEXT
    ) == CreateSessionRequest.model_validate(snake, context=CONTEXT)
    execute = ExecuteRequest.model_validate(
        {"session_id": "s", "command": {"type": "execute_shell", "command_name": "ls"}}
    )
    assert execute == ExecuteRequest.model_validate(
        {"sessionId": "s", "command": {"type": "execute_shell", "commandName": "ls"}}
    )
    assert execute.to_wire()["sessionId"] == "s"
    assert execute.to_wire()["command"]["commandName"] == "ls"


def test_a_request_survives_a_round_trip_through_its_own_wire_form() -> None:
    request = RunRequest.model_validate(
        {"language": "go", "code": "x", "stdin": "in", "timeoutSeconds": 3, "memoryLimitMB": 256},
        context=CONTEXT,
    )
    assert RunRequest.model_validate_json(request.model_dump_json(), context=CONTEXT) == request


def test_limits_fail_closed_without_the_server_settings() -> None:
    with pytest.raises(ValidationError) as caught:
        CreateSessionRequest.model_validate({"language": "python", "memoryLimitMB": 128})
    (error,) = caught.value.errors()
    assert error["loc"] == ("memoryLimitMB",)
    assert "max_memory_mb" in error["msg"]
    with pytest.raises(ValidationError) as caught:
        CreateSessionRequest(language="python", memory_limit_mb=128)
    assert caught.value.errors()[0]["loc"] == ("memory_limit_mb",)
    accepted = CreateSessionRequest.model_validate(
        {"language": "python", "memoryLimitMB": 128}, context=context_for(Settings())
    )
    assert accepted.memory_limit_mb == 128


def test_a_context_without_settings_is_no_context() -> None:
    with pytest.raises(ValidationError):
        CreateSessionRequest.model_validate(
            {"language": "python", "memoryLimitMB": 128}, context={"settings": "lots"}
        )


@pytest.mark.parametrize(
    ("model", "data", "field", "maximum"),
    [
        (CreateSessionRequest, {"language": "py"}, "memoryLimitMB", SETTINGS.max_memory_mb),
        (CreateSessionRequest, {"language": "py"}, "cpuLimit", SETTINGS.max_cpu_limit),
        (
            CreateSessionRequest,
            {"language": "py"},
            "idleTimeoutMinutes",
            SETTINGS.max_idle_timeout_minutes,
        ),
        (
            CreateSessionRequest,
            {"language": "py"},
            "maxLifetimeMinutes",
            SETTINGS.max_lifetime_minutes,
        ),
        (
            RunRequest,
            {"language": "py", "code": ""},
            "timeoutSeconds",
            SETTINGS.max_command_timeout_seconds,
        ),
        (RunRequest, {"language": "py", "code": ""}, "memoryLimitMB", SETTINGS.max_memory_mb),
    ],
)
def test_request_limits(
    model: type[CreateSessionRequest | RunRequest],
    data: dict[str, Any],
    field: str,
    maximum: float,
) -> None:
    at_max = {**data, field: maximum}
    with pytest.raises(ValidationError) as caught:
        model.model_validate(at_max)  # no context: refused, even within the maximum
    assert caught.value.errors()[0]["loc"] == (field,)
    assert model.model_validate(at_max, context=CONTEXT).to_wire()[field] == maximum
    with pytest.raises(ValidationError) as caught:
        model.model_validate({**data, field: maximum + 1}, context=CONTEXT)
    (error,) = caught.value.errors()
    assert error["loc"] == (field,)
    assert "server maximum" in error["msg"]


@pytest.mark.parametrize(
    ("command", "field", "maximum"),
    [
        (
            {"type": "read_file", "path": "a"},
            "maxBytes",
            SETTINGS.read_file_limit_bytes,
        ),
        (
            {"type": "execute_shell", "commandName": "ls"},
            "timeoutSeconds",
            SETTINGS.max_command_timeout_seconds,
        ),
    ],
)
def test_command_limits(command: dict[str, Any], field: str, maximum: float) -> None:
    kind = command["type"]
    with pytest.raises(ValidationError) as caught:
        COMMAND.validate_python({**command, field: 1})
    assert caught.value.errors()[0]["loc"] == (kind, field)
    parsed = COMMAND.validate_python({**command, field: maximum}, context=CONTEXT)
    assert isinstance(parsed, ReadFile | ExecuteShell)
    assert parsed.to_wire()[field] == maximum
    with pytest.raises(ValidationError) as caught:
        COMMAND.validate_python({**command, field: maximum + 1}, context=CONTEXT)
    assert caught.value.errors()[0]["loc"] == (kind, field)
    with pytest.raises(ValidationError) as caught:  # nested in session.execute: the same
        ExecuteRequest.model_validate({"sessionId": "s", "command": {**command, field: 1}})
    assert caught.value.errors()[0]["loc"] == ("command", kind, field)


def test_unset_limits_need_no_context() -> None:
    assert CreateSessionRequest.model_validate({"language": "py"}).memory_limit_mb is None
    assert RunRequest.model_validate({"language": "py", "code": ""}).timeout_seconds is None
    assert isinstance(COMMAND.validate_python({"type": "read_file", "path": "a"}), ReadFile)


@pytest.mark.parametrize(
    ("model", "data"),
    [
        (CreateSessionRequest, {"language": "python", "colour": "red"}),
        (RunRequest, {"language": "python", "code": "", "colour": "red"}),
        (
            ExecuteRequest,
            {"sessionId": "s", "command": {"type": "read_file", "path": "a"}, "colour": 1},
        ),
        (ExecutionQuery, {"status": "queued", "colour": "red"}),
        (SessionConfig, {**CONFIG.to_wire(), "colour": "red"}),
        (RunResult, {**RUN.to_wire(), "colour": "red"}),
        (SessionList, {"count": 0, "sessions": [], "colour": "red"}),
        (ExecutionList, {"executions": [], "colour": "red"}),
    ],
)
def test_unknown_fields_are_rejected(model: type[WireModel], data: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data, context=CONTEXT)
    (error,) = caught.value.errors()
    assert (error["loc"], error["type"]) == (("colour",), "extra_forbidden")


def test_execution_query_defaults_and_statuses() -> None:
    """The limit's bounds are the route's (``Query(ge=1, le=1000)``, tested in process)."""
    assert ExecutionQuery.model_validate({}).limit == 100
    assert ExecutionQuery.model_validate({"status": "queued"}).status == "queued"
    with pytest.raises(ValidationError):
        ExecutionQuery.model_validate({"status": "sleeping"})


def test_a_summary_has_no_result_and_a_record_adds_it() -> None:
    assert "result" not in ExecutionSummary.model_fields
    summary = ExecutionSummary(
        execution_id="e", status="queued", language="python", created_at=CREATED
    )
    assert "result" not in summary.to_wire()
    with pytest.raises(ValidationError):  # a result is no part of a list row
        ExecutionSummary.model_validate({**summary.to_wire(), "result": RUN.to_wire()})
    record = ExecutionRecord(**dict(summary), result=RUN)
    assert record.to_wire() == {**summary.to_wire(), "result": RUN.to_wire()}


def test_an_execution_error_has_kind_and_message() -> None:
    error = ExecutionError(kind="sandbox_unavailable", message="try again later")
    assert error.to_wire() == {"kind": "sandbox_unavailable", "message": "try again later"}
    with pytest.raises(ValidationError):
        ExecutionError.model_validate({"kind": "sandbox_unavailable"})


def test_the_error_names_the_exact_maximum() -> None:
    maximum = SETTINGS.read_file_limit_bytes
    with pytest.raises(ValidationError) as caught:
        COMMAND.validate_python(
            {"type": "read_file", "path": "a", "maxBytes": maximum + 1}, context=CONTEXT
        )
    assert f"at most {maximum} " in caught.value.errors()[0]["msg"]
