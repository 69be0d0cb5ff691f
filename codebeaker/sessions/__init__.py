"""Sessions: long-lived containers, their lifecycle, and one-shot runs."""

from codebeaker.sessions.manager import SessionManager
from codebeaker.sessions.oneshot import OneShotRunner, RunRequest
from codebeaker.sessions.reaper import Reaper
from codebeaker.sessions.sandboxes import SandboxFactory
from codebeaker.sessions.session import Session, SessionConfig

__all__ = [
    "OneShotRunner",
    "Reaper",
    "RunRequest",
    "SandboxFactory",
    "Session",
    "SessionConfig",
    "SessionManager",
]
