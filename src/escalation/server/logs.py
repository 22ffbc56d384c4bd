"""Structured logs: one JSON object per line on standard error (time, level, logger, message, and any fields given)."""

from __future__ import annotations

import json
import logging
import logging.config
import sys
import time
from typing import Any

__all__ = ["JsonFormatter", "log_config", "setup_logging"]

#: The attributes every log record has; anything else was given with ``extra=`` and is written as a field.
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime", "color_message", "taskName"}


class JsonFormatter(logging.Formatter):
    """A record as one JSON line: ``{"time", "level", "logger", "message", ...fields}``."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info and record.exc_info[1] is not None:
            out["error"] = f"{type(record.exc_info[1]).__name__}: {record.exc_info[1]}"
        return json.dumps(out, default=str, ensure_ascii=False)


def log_config(level: str = "info") -> dict[str, Any]:
    """A :func:`logging.config.dictConfig` for the service and uvicorn: every logger writes JSON lines to stderr."""
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    loggers = {name: {"handlers": ["json"], "level": level.upper(), "propagate": False} for name in ("escalation", "uvicorn", "uvicorn.error")}
    loggers["uvicorn.access"] = {"handlers": [], "level": "WARNING", "propagate": False}  # the service logs its own requests
    return {"version": 1, "disable_existing_loggers": False, "formatters": {"json": {"()": JsonFormatter}}, "handlers": {"json": handler}, "loggers": loggers}


def setup_logging(level: str = "info") -> None:
    """Configure logging as :func:`log_config` says (before uvicorn starts)."""
    logging.config.dictConfig(log_config(level))
    sys.stderr.flush()
