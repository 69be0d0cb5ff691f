"""Asynchronous executions: a durable queue of one-shot runs."""

from codebeaker.executions.queue import SERVER_RESTARTED, ExecutionQueue
from codebeaker.executions.store import ExecutionStore

__all__ = ["SERVER_RESTARTED", "ExecutionQueue", "ExecutionStore"]
