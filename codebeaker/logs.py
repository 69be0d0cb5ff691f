"""Logging set-up, called once at start-up (never at import)."""

from __future__ import annotations

import logging
import re
import sys

from loguru import logger

__all__ = ["configure_logging"]

API_KEY_IN_QUERY = re.compile(r"(apiKey=)[^&\s\"]*")
"""uvicorn logs a WebSocket's path with its query: a browser's ``?apiKey=`` must not land
in the log."""


class _InterceptHandler(logging.Handler):
    """Send the standard library's records (uvicorn, apscheduler) through loguru."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        message = API_KEY_IN_QUERY.sub(r"\1***", record.getMessage())
        logger.opt(depth=6, exception=record.exc_info).log(level, message)


def configure_logging(level: str = "INFO", *, json: bool = False) -> None:
    logger.remove()
    logger.add(sys.stderr, level=level.upper(), serialize=json, backtrace=False, diagnose=False)
    logging.basicConfig(handlers=[_InterceptHandler()], level=0, force=True)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "apscheduler"):
        logging.getLogger(name).handlers = [_InterceptHandler()]
        logging.getLogger(name).propagate = False
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
