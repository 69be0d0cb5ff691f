"""Typed commands run inside a session's container."""

from codebeaker.commands.executor import CommandOutcome, run_command
from codebeaker.commands.models import Command

__all__ = ["Command", "CommandOutcome", "run_command"]
