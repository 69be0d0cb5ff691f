"""The one translation of Docker's failures, and what a client is shown for each."""

import asyncio

import aiodocker
import pytest
from codebeaker_client.errors import SandboxPaused, SandboxTimeout, for_rpc_error

from codebeaker.errors import describe, problem_for, rpc_error
from codebeaker.exceptions import (
    ContainerGoneError,
    ContainerPausedError,
    ImageMissingError,
    SandboxError,
    SandboxTimeoutError,
    SandboxUnavailableError,
)
from codebeaker.sandbox.docker import docker_errors

PAUSED = (
    "Container abc is paused, unpause the container before exec",  # exec create and start
    "Cannot kill container: abc: Container abc is paused. Unpause the container before stopping"
    " or killing",
)


@pytest.mark.parametrize(
    ("status", "message", "kwargs", "expected"),
    [
        (404, "No such container: abc", {"container_id": "abc"}, ContainerGoneError),
        (409, "Container abc is not running", {"container_id": "abc"}, ContainerGoneError),
        (
            500,
            "Container abc is not running: Removal In Progress",
            {"container_id": "abc"},
            ContainerGoneError,
        ),
        (409, PAUSED[0], {"container_id": "abc"}, ContainerPausedError),
        (409, PAUSED[1], {"container_id": "abc"}, ContainerPausedError),
        (
            404,
            "No such image: codebeaker/go:latest",
            {"image": "codebeaker/go:latest"},
            ImageMissingError,
        ),
        (900, "Cannot connect to Docker Engine via unix:///x", {}, SandboxUnavailableError),
        (500, "something broke", {"container_id": "abc"}, SandboxError),
    ],
)
async def test_library_errors_are_translated(
    status: int, message: str, kwargs: dict[str, str], expected: type[Exception]
) -> None:
    with pytest.raises(expected) as caught:
        async with docker_errors(kwargs.get("container_id", ""), kwargs.get("image", "")):
            raise aiodocker.DockerError(status, message)
    assert type(caught.value) is expected
    assert isinstance(caught.value.__cause__, aiodocker.DockerError)
    assert not isinstance(caught.value, aiodocker.DockerError)


async def test_connection_errors_mean_unavailable() -> None:
    with pytest.raises(SandboxUnavailableError):
        async with docker_errors():
            raise ConnectionRefusedError("refused")


async def test_a_call_past_its_deadline_is_cancelled_and_named() -> None:
    began = asyncio.get_running_loop().time()
    with pytest.raises(SandboxTimeoutError) as caught:
        async with docker_errors("abc123def456789", deadline=0.05):
            await asyncio.sleep(30)  # an exec into a frozen container: never returns
    assert asyncio.get_running_loop().time() - began < 5
    assert (caught.value.container_id, caught.value.seconds) == ("abc123def456789", 0.05)
    assert "abc123def456" in str(caught.value)


async def test_a_timeout_that_is_not_the_deadline_passes_through() -> None:
    with pytest.raises(TimeoutError) as caught:
        async with docker_errors("abc", deadline=30):
            raise TimeoutError("the caller's own")
    assert not isinstance(caught.value, SandboxError)


@pytest.mark.parametrize(
    ("exc", "code", "status", "kind", "sdk"),
    [
        (ContainerPausedError("abc123def4567890"), -32014, 409, "sandbox_paused", SandboxPaused),
        (SandboxTimeoutError("abc", 30), -32015, 504, "sandbox_timeout", SandboxTimeout),
    ],
)
def test_paused_and_silent_containers_are_told_to_clients(
    exc: SandboxError, code: int, status: int, kind: str, sdk: type[Exception]
) -> None:
    described = describe(exc)
    assert (described.code, described.status, described.data.kind) == (code, status, kind)
    assert described.message == exc.message
    assert problem_for(status, described.message, described.data).title in (
        "Conflict",
        "Gateway Timeout",
    )
    raised = for_rpc_error(rpc_error(exc).model_dump(mode="json", by_alias=True))
    assert type(raised) is sdk
    assert raised.retryable
