"""Path rules, checked on the server before anything reaches the container.

This is the lexical half (``..``, absolute paths); the guest repeats the check after
resolving symlinks inside the container, where they live.
"""

from __future__ import annotations

import posixpath

from codebeaker.constants import ALLOWED_ROOTS, WORKSPACE
from codebeaker.exceptions import CommandFailedError

__all__ = ["is_allowed", "resolve"]


def is_allowed(path: str) -> bool:
    """True for an absolute, normalised path at or below one of the allowed roots."""
    return any(path == root or path.startswith(root + "/") for root in ALLOWED_ROOTS)


def resolve(path: str) -> str:
    """The absolute, normalised form of a client path, relative ones against /workspace."""
    joined = path if path.startswith("/") else posixpath.join(WORKSPACE, path)
    normal = posixpath.normpath(joined)
    if normal.startswith("//"):  # POSIX keeps a leading double slash; we do not
        normal = "/" + normal.lstrip("/")
    if not is_allowed(normal):
        raise CommandFailedError("path_outside_workspace", path)
    return normal
