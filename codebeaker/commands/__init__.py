"""Typed commands run inside a session's container."""

from codebeaker.commands.executor import CommandOutcome, run_command
from codebeaker.commands.models import Command
from codebeaker.commands.shell import CommandIO

__all__ = ["Command", "CommandIO", "CommandOutcome", "run_command"]
