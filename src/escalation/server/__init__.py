"""The decision service (`escalation serve`, interfaces.md §5; the optional ``server`` extra): app, service, runner.

Imported only by :mod:`escalation.cli.serve`'s command body and by tests: the core never
imports it, so the library works without FastAPI, uvicorn and prometheus-client.
"""

from .app import ApiError, create_app, event_lines
from .logs import JsonFormatter, log_config, setup_logging
from .metrics import Metrics
from .run import DEFAULT_STATE, ServeConfig, ServeError, serve, sqlite_path
from .service import Outcome, ReloadStatus, Service, ServiceUnavailable, event_key, feed_silently

__all__ = [
    "DEFAULT_STATE",
    "ApiError",
    "JsonFormatter",
    "Metrics",
    "Outcome",
    "ReloadStatus",
    "ServeConfig",
    "ServeError",
    "Service",
    "ServiceUnavailable",
    "create_app",
    "event_key",
    "event_lines",
    "feed_silently",
    "log_config",
    "serve",
    "setup_logging",
    "sqlite_path",
]
