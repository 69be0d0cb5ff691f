"""Builds the runtime images, and on request the server's own, offline when no registry answers.

Every language image builds on one common layer (docker/base: the sandbox user, the guest
helper and the agent). The server image (docker/server, for compose.yaml) builds on the base
itself, from the sources of the two distributions. An image is rebuilt only when its inputs
change: its build context and the image below it, hashed into the ``codebeaker.image-hash``
label. The base is the configured registry image when it can be pulled; otherwise a Debian root
made with debootstrap from this machine's own apt mirror and imported with ``docker import``.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from loguru import logger

from codebeaker.constants import LABEL_IMAGE_HASH, LABEL_MANAGED
from codebeaker.exceptions import SandboxError
from codebeaker.runtimes import RUNTIMES
from codebeaker.settings import Settings

__all__ = ["SERVER", "ImageBuild", "build_images", "debian_mirror", "selected", "server_context"]

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "docker"
COMMON = DOCKER / "base"  # the sandbox user and the guest helper, shared by every language
SANDBOX = Path(__file__).resolve().parent / "sandbox"
IN_IMAGE = tuple(  # stdlib-only, baked into every image
    SANDBOX / name for name in ("guest.py", "agent.py", "frames.py", "kernels.py", "kernel.py")
)
SERVER = "server"
"""The name ``images build`` takes for the server's image; never built unless named."""
SERVER_DOCKERFILE = "docker/server/Dockerfile"
SERVER_SOURCES = (  # .dockerignore lets in the same: what the server image is built from
    "docker/server",
    "pyproject.toml",
    "README.md",
    "codebeaker",
    "clients/python/pyproject.toml",
    "clients/python/README.md",
    "clients/python/codebeaker_client",
)
NOT_SOURCES = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
LOCAL_CA = Path("/usr/local/share/ca-certificates")
"""Certificate authorities this machine added (Debian's place for them): pip in the server's
build trusts them too, so a proxy that inspects TLS and that the host trusts does not fail it."""
SUITE = "bookworm"
PULL_TIMEOUT = 60.0
REMOVE_TIMEOUT = 60.0
# Written into the offline root, as Debian's own slim images do: later apt installs skip
# documentation and translations, which nothing in a sandbox reads.
DPKG_SLIM = """\
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
"""
APT_SOURCES = (Path("/etc/apt/sources.list"), Path("/etc/apt/sources.list.d"))
# The legacy builder honours --network host, so apt-get inside a build reaches the mirror.
DOCKER_ENV = {**os.environ, "DOCKER_BUILDKIT": "0"}


@dataclass(frozen=True)
class ImageBuild:
    language: str
    image: str
    status: str  # "built" or "up-to-date"
    seconds: float


async def _run(*argv: str, stdin: int | None = None, timeout: float | None = None) -> str:
    """Run a program, streaming its combined output to the debug log (a build takes
    minutes); its output, or SandboxError carrying the tail of it."""
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=stdin,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=DOCKER_ENV,
        limit=1024 * 1024,  # apt and docker can print long lines
    )
    assert process.stdout is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(timeout):
            async for raw in process.stdout:
                line = raw.decode(errors="replace").rstrip()
                logger.debug("{}: {}", argv[1], line)
                lines.append(line)
            await process.wait()
    except TimeoutError:
        process.kill()
        await process.wait()
        raise SandboxError(f"`{' '.join(argv[:3])}` timed out after {timeout:g}s") from None
    text = "\n".join(lines)
    if process.returncode != 0:
        raise SandboxError(f"`{' '.join(argv[:3])}` failed: {text.strip()[-1500:]}")
    return text


async def _image_id(image: str) -> str | None:
    try:
        return (await _run("docker", "image", "inspect", "--format", "{{.Id}}", image)).strip()
    except SandboxError:
        return None


async def _image_label(image: str, label: str) -> str | None:
    try:
        text = await _run(
            "docker",
            "image",
            "inspect",
            "--format",
            f'{{{{index .Config.Labels "{label}"}}}}',
            image,
        )
    except SandboxError:
        return None
    return text.strip() or None


def debian_mirror(sources: Sequence[Path] = APT_SOURCES, suite: str = SUITE) -> str | None:
    """The first mirror this machine's apt sources use for ``suite`` (default bookworm)."""
    files: list[Path] = []
    for source in sources:
        if source.is_dir():
            files += sorted([*source.glob("*.list"), *source.glob("*.sources")])
        elif source.is_file():
            files.append(source)
    for file in files:
        text = file.read_text(errors="replace")
        if file.suffix == ".sources":
            for stanza in re.split(r"\n\s*\n", text):
                fields: dict[str, str] = dict(re.findall(r"(?m)^(\w[\w-]*):\s*(.*)$", stanza))
                uris = fields.get("URIs", "").split()
                if (
                    uris
                    and fields.get("Enabled", "yes").lower() != "no"
                    and "deb" in fields.get("Types", "").split()
                    and suite in fields.get("Suites", "").split()
                ):
                    return uris[0]
        else:
            for line in text.splitlines():
                match = re.match(r"\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)", line)
                if match and match.group(2) == suite:
                    return match.group(1)
    return None


def _slim(root: Path) -> None:
    """Drop what debootstrap leaves behind (downloaded .debs, package lists, docs): about
    half of a minbase root. Symlinks are unlinked, never followed out of the root (an
    absolute link would point into this machine's own /usr)."""
    root = root.resolve()
    (root / "etc/dpkg/dpkg.cfg.d/codebeaker-slim").write_text(DPKG_SLIM)
    doomed = [*root.glob("var/cache/apt/archives/*.deb"), *root.glob("var/lib/apt/lists/*_*")]
    for name in ("man", "groff", "info", "lintian", "linda", "locale"):
        doomed += root.glob(f"usr/share/{name}/*")
    doomed += (p for p in root.glob("usr/share/doc/*/*") if p.name != "copyright")
    for path in doomed:
        if not path.parent.resolve().is_relative_to(root):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def _apt_sources(root: Path, mirror: str) -> None:
    """Give the offline root the updates and security suites, as Debian's own images have,
    so image builds (docker/base runs apt-get upgrade) pick up security fixes."""
    lines = [f"deb {mirror} {SUITE} main", f"deb {mirror} {SUITE}-updates main"]
    security = debian_mirror(suite=f"{SUITE}-security")
    if security is not None:
        lines.append(f"deb {security} {SUITE}-security main")
    (root / "etc/apt/sources.list").write_text("\n".join(lines) + "\n")


async def _debootstrap_base(tag: str, mirror: str) -> None:
    with tempfile.TemporaryDirectory(prefix="codebeaker-rootfs-", dir="/var/tmp") as root:
        logger.info("building the offline base image {} from {}", tag, mirror)
        await _run("debootstrap", "--variant=minbase", SUITE, root, mirror, timeout=900)
        _slim(Path(root))
        _apt_sources(Path(root), mirror)
        read_end, write_end = os.pipe()
        try:
            tar = await asyncio.create_subprocess_exec(
                "tar", "-C", root, "--numeric-owner", "-c", ".", stdout=write_end
            )
        finally:
            os.close(write_end)
        try:
            await _run(
                "docker", "import", "--change", f"LABEL {LABEL_MANAGED}=true",
                "-", tag, stdin=read_end, timeout=600,
            )  # fmt: skip
        finally:
            os.close(read_end)
            if await tar.wait() != 0:
                raise SandboxError("tar of the debootstrap root failed")


async def ensure_base(settings: Settings) -> str:
    """A base image that exists locally. An offline base made earlier wins over a pull, so
    a box without a registry does not wait for the pull to time out on every build."""
    offline = f"{settings.image_prefix}/base:{SUITE}"
    for image in (settings.base_image, offline):
        if await _image_id(image):
            return image
    try:
        await _run("docker", "pull", settings.base_image, timeout=PULL_TIMEOUT)
        return settings.base_image
    except SandboxError as exc:
        logger.info("cannot pull {} ({}); building an offline base", settings.base_image, exc)
    if shutil.which("debootstrap") is None or os.geteuid() != 0:
        raise SandboxError(
            "no registry answers and the offline base needs root and debootstrap "
            "(scripts/ensure-docker.sh installs it)"
        )
    mirror = settings.debian_mirror or debian_mirror()
    if mirror is None:
        raise SandboxError("no Debian mirror in the apt sources; set CODEBEAKER_DEBIAN_MIRROR")
    await _debootstrap_base(offline, mirror)
    return offline


def content_hash(context: Path, base_id: str) -> str:
    """Hash of every file of the build context and the id of the image it builds on."""
    digest = hashlib.sha256(base_id.encode())
    for path in sorted(p for p in context.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(context)).encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _directory(directory: Path, *extra: Path) -> Callable[[Path], None]:
    """A build context of one docker/ directory, plus single files beside its Dockerfile."""

    def fill(context: Path) -> None:
        shutil.copytree(directory, context, dirs_exist_ok=True)
        for source in extra:
            shutil.copy2(source, context / source.name)

    return fill


def server_context(context: Path, root: Path = ROOT, local_ca: Path = LOCAL_CA) -> None:
    """The server image's context: docker/server and the sources, each at its path in the
    repository (so ``docker build -f docker/server/Dockerfile .`` from there works alike),
    without caches, virtualenvs or tests: a few hundred KB, and an image that is current
    is not rebuilt. This machine's own certificate authorities go to docker/server/local-ca."""
    for name in SERVER_SOURCES:
        source, target = root / name, context / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=NOT_SOURCES)
        else:
            shutil.copy2(source, target)
    authorities = sorted(local_ca.rglob("*.crt")) if local_ca.is_dir() else []
    for certificate in authorities:
        target = context / "docker" / SERVER / "local-ca" / certificate.relative_to(local_ca)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(certificate, target)


async def _build(
    name: str,
    fill: Callable[[Path], None],
    image: str,
    base: str,
    force: bool,
    replaced: list[str],
    dockerfile: str = "Dockerfile",
) -> ImageBuild:
    """Build one image from the context ``fill`` writes (``dockerfile`` in it), unless its
    label says it is current; the id it replaces goes to ``replaced``, to be removed once
    nothing newer builds on it."""
    started = time.monotonic()
    base_id = await _image_id(base)
    if base_id is None:
        raise SandboxError(f"base image {base} is missing")
    with tempfile.TemporaryDirectory(prefix=f"codebeaker-{name}-") as context:
        fill(Path(context))
        wanted = content_hash(Path(context), base_id)
        if not force and await _image_label(image, LABEL_IMAGE_HASH) == wanted:
            return ImageBuild(name, image, "up-to-date", time.monotonic() - started)
        logger.info("building {}", image)
        old_id = await _image_id(image)
        await _run(
            "docker", "build", "--network", "host", "--pull=false", "--force-rm",
            "--build-arg", f"BASE_IMAGE={base}",
            "--label", f"{LABEL_IMAGE_HASH}={wanted}",
            "--label", f"{LABEL_MANAGED}=true",
            "--file", str(Path(context) / dockerfile),
            "--tag", image, context,
            timeout=1800,
        )  # fmt: skip
    if old_id is not None and old_id != await _image_id(image):
        replaced.append(old_id)
    return ImageBuild(name, image, "built", time.monotonic() - started)


async def _remove_replaced(image_ids: list[str]) -> None:
    """Each rebuild would otherwise leave a dangling image of hundreds of MB behind.
    Children go first; an image someone tagged or a container still uses stays, and so does
    one the engine does not remove within a minute (it waits on a paused container)."""
    for image_id in reversed(image_ids):
        try:
            tags = await _run(
                "docker", "image", "inspect", "--format", "{{len .RepoTags}}", image_id,
                timeout=REMOVE_TIMEOUT,
            )  # fmt: skip
            if tags.strip() == "0":
                await _run("docker", "image", "rm", image_id, timeout=REMOVE_TIMEOUT)
        except SandboxError as exc:
            logger.debug("kept replaced image {}: {}", image_id[:19], exc)


def selected(names: Sequence[str] | None) -> tuple[list[str], bool]:
    """The languages (canonical names) and whether the server image is among ``names``."""
    wanted = list(names or RUNTIMES.names())
    languages = [RUNTIMES.get(name).name for name in wanted if name != SERVER]
    return languages, SERVER in wanted


async def build_images(
    settings: Settings, names: Sequence[str] | None = None, *, force: bool = False
) -> list[ImageBuild]:
    """Build what is missing or stale, one image at a time (two cores do not build faster
    in parallel, and apt's downloads share one mirror). ``names`` are languages, or
    ``server`` for the server's image; none means every runtime image (not the server's,
    which only a container deployment needs)."""
    languages, server = selected(names)
    base = await ensure_base(settings)
    replaced: list[str] = []
    builds: list[ImageBuild] = []
    common = f"{settings.image_prefix}/runtime-base:latest"
    if languages:
        fill = _directory(COMMON, *IN_IMAGE)
        builds.append(await _build("runtime-base", fill, common, base, force, replaced))
    for name in languages:
        fill = _directory(DOCKER / "runtimes" / name)
        builds.append(await _build(name, fill, settings.image_for(name), common, force, replaced))
    if server:
        image = settings.image_for(SERVER)
        builds.append(
            await _build(SERVER, server_context, image, base, force, replaced, SERVER_DOCKERFILE)
        )
    await _remove_replaced(replaced)
    return builds
