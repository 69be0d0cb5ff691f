"""Typed commands run inside a session's container."""

from codebeaker_client.models.commands import Command

from codebeaker.commands.executor import run_command
from codebeaker.commands.shell import CommandIO

__all__ = ["Command", "CommandIO", "run_command"]
