import aiodocker
import pytest

from codebeaker.exceptions import (
    ContainerGoneError,
    ImageMissingError,
    SandboxError,
    SandboxUnavailableError,
)
from codebeaker.sandbox.docker import docker_errors


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
        async with docker_errors(**kwargs):
            raise aiodocker.DockerError(status, message)
    assert isinstance(caught.value.__cause__, aiodocker.DockerError)
    assert not isinstance(caught.value, aiodocker.DockerError)


async def test_connection_errors_mean_unavailable() -> None:
    with pytest.raises(SandboxUnavailableError):
        async with docker_errors():
            raise ConnectionRefusedError("refused")
