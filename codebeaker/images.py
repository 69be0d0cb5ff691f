"""Builds the runtime images, offline when no registry answers.

Every language image builds on one common layer (docker/base: the sandbox user, the guest
helper and the agent). An image is rebuilt only when its inputs change: its Dockerfile directory
and the image below it, hashed into the ``codebeaker.image-hash`` label. The base is the
configured registry image when it can be pulled; otherwise a Debian root made with
debootstrap from this machine's own apt mirror and imported with ``docker import``.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from loguru import logger

from codebeaker.constants import LABEL_IMAGE_HASH, LABEL_MANAGED
from codebeaker.exceptions import SandboxError
from codebeaker.runtimes import RUNTIMES
from codebeaker.settings import Settings

__all__ = ["ImageBuild", "build_images", "debian_mirror"]

DOCKER = Path(__file__).resolve().parent.parent / "docker"
COMMON = DOCKER / "base"  # the sandbox user and the guest helper, shared by every language
SANDBOX = Path(__file__).resolve().parent / "sandbox"
IN_IMAGE = tuple(  # stdlib-only, baked into every image
    SANDBOX / name for name in ("guest.py", "agent.py", "frames.py", "kernels.py", "kernel.py")
)
SUITE = "bookworm"
PULL_TIMEOUT = 60.0
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


async def _build(
    name: str, directory: Path, image: str, base: str, force: bool, replaced: list[str]
) -> ImageBuild:
    """Build one image unless its label says it is current; the id it replaces goes to
    ``replaced``, to be removed once nothing newer builds on it."""
    started = time.monotonic()
    base_id = await _image_id(base)
    if base_id is None:
        raise SandboxError(f"base image {base} is missing")
    with tempfile.TemporaryDirectory(prefix=f"codebeaker-{name}-") as context:
        shutil.copytree(directory, context, dirs_exist_ok=True)
        if directory == COMMON:
            for source in IN_IMAGE:
                shutil.copy2(source, Path(context) / source.name)
        wanted = content_hash(Path(context), base_id)
        if not force and await _image_label(image, LABEL_IMAGE_HASH) == wanted:
            return ImageBuild(name, image, "up-to-date", time.monotonic() - started)
        logger.info("building {}", image)
        old_id = await _image_id(image)
        await _run(
            "docker", "build", "--network", "host", "--pull=false",
            "--build-arg", f"BASE_IMAGE={base}",
            "--label", f"{LABEL_IMAGE_HASH}={wanted}",
            "--label", f"{LABEL_MANAGED}=true",
            "--tag", image, context,
            timeout=1800,
        )  # fmt: skip
    if old_id is not None and old_id != await _image_id(image):
        replaced.append(old_id)
    return ImageBuild(name, image, "built", time.monotonic() - started)


async def _remove_replaced(image_ids: list[str]) -> None:
    """Each rebuild would otherwise leave a dangling image of hundreds of MB behind.
    Children go first; an image someone tagged or a container still uses stays."""
    for image_id in reversed(image_ids):
        try:
            tags = await _run(
                "docker", "image", "inspect", "--format", "{{len .RepoTags}}", image_id
            )
            if tags.strip() == "0":
                await _run("docker", "image", "rm", image_id)
        except SandboxError as exc:
            logger.debug("kept replaced image {}: {}", image_id[:19], exc)


async def build_images(
    settings: Settings, languages: Sequence[str] | None = None, *, force: bool = False
) -> list[ImageBuild]:
    """Build what is missing or stale, one image at a time (two cores do not build faster
    in parallel, and apt's downloads share one mirror)."""
    names = [RUNTIMES.get(name).name for name in languages] if languages else RUNTIMES.names()
    base = await ensure_base(settings)
    common = f"{settings.image_prefix}/runtime-base:latest"
    replaced: list[str] = []
    builds = [await _build("runtime-base", COMMON, common, base, force, replaced)]
    for name in names:
        image = settings.image_for(name)
        directory = DOCKER / "runtimes" / name
        builds.append(await _build(name, directory, image, common, force, replaced))
    await _remove_replaced(replaced)
    return builds
