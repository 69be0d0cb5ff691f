"""Logging set-up, called once at start-up (never at import)."""

from __future__ import annotations

import logging
import re
import sys
from urllib.parse import unquote_plus

from loguru import logger

__all__ = ["configure_logging", "redact_keys"]

QUERY = re.compile(r"\?([^\s\"]*)")
KEY_PARAMETER = "apiKey"


def redact_keys(message: str) -> str:
    """uvicorn logs a request's path with its query: a browser's ``?apiKey=`` must not land
    in the log, however its name is percent-encoded (``api%4Bey`` is the same parameter
    to the parser that reads the key)."""

    def mask(match: re.Match[str]) -> str:
        pairs = []
        for pair in match.group(1).split("&"):
            name, equals, _ = pair.partition("=")
            pairs.append(f"{name}{equals}***" if unquote_plus(name) == KEY_PARAMETER else pair)
        return "?" + "&".join(pairs)

    return QUERY.sub(mask, message)


class _InterceptHandler(logging.Handler):
    """Send the standard library's records (uvicorn, apscheduler) through loguru."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        message = redact_keys(record.getMessage())
        logger.opt(depth=6, exception=record.exc_info).log(level, message)


def configure_logging(level: str = "INFO", *, json: bool = False) -> None:
    logger.remove()
    logger.add(sys.stderr, level=level.upper(), serialize=json, backtrace=False, diagnose=False)
    logging.basicConfig(handlers=[_InterceptHandler()], level=0, force=True)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "apscheduler"):
        logging.getLogger(name).handlers = [_InterceptHandler()]
        logging.getLogger(name).propagate = False
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
