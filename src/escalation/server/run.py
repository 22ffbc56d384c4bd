"""Starting the service: the state URL, the audit folder, the token, the socket, uvicorn, and the signals.

SIGTERM and SIGINT stop it gracefully (uvicorn stops accepting and finishes the requests
in flight; the service then finishes its writes, closes the segment and the store); SIGHUP
reloads the policy (:meth:`Service.reload`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import signal
import socket
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import attrs
import uvicorn

from ..api import load
from ..errors import EXIT_USAGE, EscalationError
from ..state import SQLiteStore
from .app import create_app
from .logs import log_config, setup_logging
from .metrics import Metrics
from .service import Service

log = logging.getLogger("escalation.serve")

__all__ = ["DEFAULT_STATE", "ServeConfig", "ServeError", "serve", "sqlite_path"]

DEFAULT_STATE = "sqlite:///escalation-state.db"


class ServeError(EscalationError):
    """The service cannot start: a state URL it cannot open, an address it cannot listen on, an unreadable token file."""

    exit_code = EXIT_USAGE


@attrs.frozen(slots=True)
class ServeConfig:
    """What `escalation serve` was given."""

    policy: str
    host: str = "127.0.0.1"
    port: int = 8080
    state: str = DEFAULT_STATE
    audit: str | None = None  # default: escalation-audit/ beside the state
    token_file: str | None = None
    max_body_bytes: int = 1 << 20
    log_level: str = "info"


def sqlite_path(url: str) -> str:
    """The file of a ``sqlite:///path`` URL (``sqlite:////abs/path`` for an absolute one); ServeError for anything else."""
    parsed = urlparse(url)
    if parsed.scheme in ("postgresql", "postgres"):
        raise ServeError(f"--state {url}: the PostgreSQL store is not in this build yet; use a sqlite:///PATH state")
    if parsed.scheme != "sqlite" or parsed.netloc or not parsed.path.startswith("/") or len(parsed.path) < 2:
        raise ServeError(f"--state {url!r} is not a state URL such as sqlite:///escalation-state.db (or sqlite:////var/lib/escalation/state.db)")
    return unquote(parsed.path[1:])


def _token(path: str | None) -> str | None:
    if path is None:
        return None
    try:
        with open(path, encoding="utf-8") as fh:
            token = fh.read().strip()
    except (OSError, UnicodeDecodeError) as err:
        raise ServeError(f"cannot read the token file {path}: {getattr(err, 'strerror', None) or err}") from None
    if len(token) < 16:
        raise ServeError(f"the token in {path} is shorter than 16 characters: write a long random one (for example `openssl rand -hex 32`)")
    return token


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (port 0: a free one); ServeError when it cannot be had."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except OSError as err:
        raise ServeError(f"cannot listen on {host}:{port}: {err.strerror or err}") from None
    sock.setblocking(False)
    return sock


def _quiet(signum: int, frame: Any) -> None:
    """What SIGTERM and SIGINT do once uvicorn has handled them: nothing (uvicorn raises them again at its exit)."""


def serve(config: ServeConfig) -> int:
    """Run the service until SIGTERM or SIGINT; 0 after a clean shutdown (errors raise, with their exit codes)."""
    setup_logging(config.log_level)
    policy = load(config.policy)
    path = sqlite_path(config.state)
    folder = Path(config.audit) if config.audit is not None else Path(path).resolve().parent / "escalation-audit"
    token = _token(config.token_file)
    store = SQLiteStore(path, exclusive=True)
    metrics = Metrics()
    try:
        service = Service(config.policy, policy, store, folder, metrics)
        try:
            service.recover()
        except OSError as err:
            raise ServeError(f"cannot use the audit folder {folder}: {err.strerror or err}") from None
        sock = _listen(config.host, config.port)
    except BaseException:
        store.close()
        raise
    host, port = sock.getsockname()[:2]
    if token is None and not _is_loopback(config.host):
        log.warning(
            "listening beyond loopback without a token: anyone who reaches this address can post events; give --token-file",
            extra={"host": config.host},
        )
    app = create_app(service, token=token, max_body_bytes=config.max_body_bytes)
    server = uvicorn.Server(
        uvicorn.Config(app, log_config=log_config(config.log_level), lifespan="on", timeout_graceful_shutdown=30, access_log=False)
    )

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(service.reload()))
        log.info(
            "listening",
            extra={"url": f"http://{host}:{port}", "host": host, "port": port, "policy": policy.sha256, "state": config.state, "audit": str(folder)},
        )
        await server.serve(sockets=[sock])

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _quiet)
    asyncio.run(main())
    log.info("stopped")
    return 0
