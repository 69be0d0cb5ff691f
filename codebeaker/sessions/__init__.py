"""Sessions: long-lived containers, their lifecycle, and one-shot runs."""

from codebeaker.sessions.interactive import (
    InteractiveRun,
    InteractiveRunner,
    LiveSpec,
    RunEnd,
    RunListener,
)
from codebeaker.sessions.manager import SessionManager
from codebeaker.sessions.oneshot import NotStartedError, OneShotRunner, RunSpec
from codebeaker.sessions.pending import PendingRuns
from codebeaker.sessions.reaper import Reaper
from codebeaker.sessions.sandboxes import SandboxFactory
from codebeaker.sessions.session import Session, SessionObserver

__all__ = [
    "InteractiveRun",
    "InteractiveRunner",
    "LiveSpec",
    "NotStartedError",
    "OneShotRunner",
    "PendingRuns",
    "Reaper",
    "RunEnd",
    "RunListener",
    "RunSpec",
    "SandboxFactory",
    "Session",
    "SessionManager",
    "SessionObserver",
]
