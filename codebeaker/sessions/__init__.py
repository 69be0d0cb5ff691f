"""Sessions: long-lived containers, their lifecycle, and one-shot runs."""

from codebeaker.sessions.manager import SessionManager
from codebeaker.sessions.oneshot import NotStartedError, OneShotRunner, RunSpec
from codebeaker.sessions.reaper import Reaper
from codebeaker.sessions.sandboxes import SandboxFactory
from codebeaker.sessions.session import Session

__all__ = [
    "NotStartedError",
    "OneShotRunner",
    "Reaper",
    "RunSpec",
    "SandboxFactory",
    "Session",
    "SessionManager",
]
