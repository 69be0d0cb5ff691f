"""Language runtimes: the registry of what CodeBeaker can run."""

from codebeaker.runtimes.registry import RUNTIMES, Runtime, RuntimeRegistry

__all__ = ["RUNTIMES", "Runtime", "RuntimeRegistry"]
