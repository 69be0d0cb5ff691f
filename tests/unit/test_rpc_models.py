from typing import Any

import pytest
from codebeaker_client.models import CreateSessionRequest, ExecuteRequest, RunRequest
from pydantic import ValidationError

from codebeaker.api.wire import context_for
from codebeaker.settings import Settings

SETTINGS = Settings(max_memory_mb=1024, max_cpu_limit=2, max_idle_timeout_minutes=60)


def create(**params: Any) -> CreateSessionRequest:
    return CreateSessionRequest.model_validate(params, context=context_for(SETTINGS))


def test_camel_and_snake_case_both_work() -> None:
    camel = create(language="py", idleTimeoutMinutes=0.5, memoryLimitMB=256, cpuLimit=0.5)
    snake = create(language="py", idle_timeout_minutes=0.5, memory_limit_mb=256, cpu_limit=0.5)
    assert camel == snake
    assert camel.idle_timeout_minutes == 0.5


@pytest.mark.parametrize(
    ("field", "value"),
    [("memoryLimitMB", 2048), ("cpuLimit", 4), ("idleTimeoutMinutes", 61)],
)
def test_values_above_maxima_are_errors_naming_the_field(field: str, value: float) -> None:
    with pytest.raises(ValidationError) as caught:
        create(language="python", **{field: value})
    (error,) = caught.value.errors()
    assert error["loc"] == (field,)
    assert "server maximum" in error["msg"]


def test_unknown_params_are_refused() -> None:
    with pytest.raises(ValidationError) as caught:
        create(language="python", colour="red")
    assert caught.value.errors()[0]["loc"] == ("colour",)


def test_execute_params_name_nested_command_fields() -> None:
    with pytest.raises(ValidationError) as caught:
        ExecuteRequest.model_validate({"sessionId": "s", "command": {"type": "read_file"}})
    assert caught.value.errors()[0]["loc"] == ("command", "read_file", "path")


def test_run_timeout_is_capped() -> None:
    settings = Settings(max_command_timeout_seconds=10, default_command_timeout_seconds=5)
    with pytest.raises(ValidationError) as caught:
        RunRequest.model_validate(
            {"language": "py", "code": "", "timeoutSeconds": 11}, context=context_for(settings)
        )
    assert caught.value.errors()[0]["loc"] == ("timeoutSeconds",)
    accepted = RunRequest.model_validate(
        {"language": "py", "code": "", "timeoutSeconds": 10}, context=context_for(settings)
    )
    assert accepted.timeout_seconds == 10


@pytest.mark.parametrize("cpu", [1e-10, 0.001, 0])
def test_a_cpu_limit_docker_would_read_as_unlimited_is_refused(cpu: float) -> None:
    with pytest.raises(ValidationError) as refused:
        create(language="python", cpuLimit=cpu)
    assert refused.value.errors()[0]["loc"] == ("cpuLimit",)
