"""Logging set-up, called once at start-up (never at import)."""

from __future__ import annotations

import logging
import sys

from loguru import logger

__all__ = ["configure_logging"]


class _InterceptHandler(logging.Handler):
    """Send the standard library's records (uvicorn, apscheduler) through loguru."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        logger.opt(depth=6, exception=record.exc_info).log(level, record.getMessage())


def configure_logging(level: str = "INFO", *, json: bool = False) -> None:
    logger.remove()
    logger.add(sys.stderr, level=level.upper(), serialize=json, backtrace=False, diagnose=False)
    logging.basicConfig(handlers=[_InterceptHandler()], level=0, force=True)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "apscheduler"):
        logging.getLogger(name).handlers = [_InterceptHandler()]
        logging.getLogger(name).propagate = False
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
