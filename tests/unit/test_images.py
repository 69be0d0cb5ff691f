import json
import re
import shutil
from pathlib import Path
from typing import Any

import yaml

from codebeaker.images import SERVER_SOURCES, content_hash, debian_mirror, selected, server_context
from codebeaker.runtimes import RUNTIMES

REPOSITORY = Path(__file__).resolve().parents[2]
MIB = 1024 * 1024


def test_mirror_from_deb822_sources_skips_security_and_other_repos(tmp_path: Path) -> None:
    sources = tmp_path / "sources.list.d"
    sources.mkdir()
    (sources / "a-vendor.sources").write_text(
        "Types: deb\nURIs: https://vendor.example/apt\nSuites: nodistro\nComponents: main\n"
    )
    (sources / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n\n"
        "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\n"
    )
    assert debian_mirror([tmp_path / "sources.list", sources]) == "http://mirror.example/debian"


def test_mirror_from_one_line_sources(tmp_path: Path) -> None:
    listing = tmp_path / "sources.list"
    listing.write_text(
        "# comment\n"
        "deb http://security.example/debian-security bookworm-security main\n"
        "deb [arch=amd64 signed-by=/k.gpg] http://mirror.example/debian bookworm main\n"
    )
    assert debian_mirror([listing]) == "http://mirror.example/debian"
    assert debian_mirror([tmp_path / "missing"]) is None


def test_content_hash_follows_files_and_base(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM x\n")
    first = content_hash(tmp_path, "sha256:aaa")
    assert content_hash(tmp_path, "sha256:aaa") == first
    assert content_hash(tmp_path, "sha256:bbb") != first
    (tmp_path / "guest.py").write_text("print(1)\n")
    assert content_hash(tmp_path, "sha256:aaa") != first


def test_mirror_for_another_suite(tmp_path: Path) -> None:
    listing = tmp_path / "sources.list"
    listing.write_text(
        "deb http://mirror.example/debian bookworm main\n"
        "deb http://security.example/debian-security bookworm-security main\n"
    )
    found = debian_mirror([listing], suite="bookworm-security")
    assert found == "http://security.example/debian-security"


def test_the_server_image_is_built_only_when_named() -> None:
    assert selected(None) == (RUNTIMES.names(), False)
    assert selected(["py", "server"]) == (["python"], True)
    assert selected(["server"]) == ([], True)


def test_server_context_holds_the_sources_and_nothing_else(tmp_path: Path) -> None:
    local_ca = tmp_path / "ca"
    (local_ca / "corp").mkdir(parents=True)
    (local_ca / "corp" / "proxy.crt").write_text("-----BEGIN CERTIFICATE-----\n")
    (local_ca / "notes.txt").write_text("not a certificate\n")
    first, second = tmp_path / "first", tmp_path / "second"
    server_context(first, local_ca=local_ca)
    server_context(second, local_ca=tmp_path / "absent")
    files = {str(path.relative_to(first)) for path in first.rglob("*") if path.is_file()}
    assert {
        "docker/server/Dockerfile",
        "docker/server/healthcheck.py",
        "docker/server/local-ca/corp/proxy.crt",
        "pyproject.toml",
        "codebeaker/app.py",
        "codebeaker/playground/index.html",
        "clients/python/pyproject.toml",
        "clients/python/codebeaker_client/client.py",
    } <= files
    assert not [name for name in files if "__pycache__" in name or name.endswith(".pyc")]
    assert not [name for name in files if name.startswith(("tests", ".venv", "docs"))]
    assert "docker/server/local-ca/notes.txt" not in files
    assert sum(path.stat().st_size for path in first.rglob("*") if path.is_file()) < 2 * MIB
    # Nothing else changes it: an image that is current is not rebuilt.
    assert content_hash(first, "sha256:a") != content_hash(second, "sha256:a")
    (second / "docker/server/local-ca/corp").mkdir(parents=True)
    shutil.copy2(local_ca / "corp/proxy.crt", second / "docker/server/local-ca/corp/proxy.crt")
    assert content_hash(first, "sha256:a") == content_hash(second, "sha256:a")


def test_dockerignore_lets_in_what_the_server_context_holds() -> None:
    lines = (REPOSITORY / ".dockerignore").read_text().splitlines()
    assert "*" in lines  # everything else stays out
    allowed = tuple(line[1:] for line in lines if line.startswith("!"))
    assert allowed == SERVER_SOURCES


def compose_service() -> dict[str, Any]:
    compose = yaml.safe_load((REPOSITORY / "compose.yaml").read_text())
    assert set(compose["services"]) == {"server"}
    assert set(compose["volumes"]) == {"data"}  # declared, so it is a named volume
    service: dict[str, Any] = compose["services"]["server"]
    return service


def test_compose_runs_the_server_image_beside_the_hosts_engine() -> None:
    service = compose_service()
    assert service["image"] == "${CODEBEAKER_IMAGE_PREFIX:-codebeaker}/server:latest"
    assert service["network_mode"] == "host"
    assert service["group_add"] == [
        "${DOCKER_GID:?set DOCKER_GID to the group of the socket: stat -c %g /var/run/docker.sock}"
    ]
    volumes = service["volumes"]
    assert "/var/run/docker.sock:/var/run/docker.sock" in volumes
    assert "data:/data" in volumes
    keys_path = service["environment"]["CODEBEAKER_API_KEYS_FILE"]
    [keys] = [volume for volume in volumes if f":{keys_path}:" in volume]
    assert keys.endswith(":ro"), keys


def test_compose_checks_health_as_the_image_does() -> None:
    dockerfile = (REPOSITORY / "docker/server/Dockerfile").read_text()
    command = re.search(r"HEALTHCHECK .*?CMD (\[.*?\])", dockerfile, re.DOTALL)
    assert command is not None
    assert compose_service()["healthcheck"]["test"] == ["CMD", *json.loads(command.group(1))]
