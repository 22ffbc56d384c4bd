"""`escalation serve POLICY [--host H] [--port P] [--state URL] [--audit DIR] [--token-file F]`: the decision service (§5).

The service lives in :mod:`escalation.server` (the optional ``server`` extra); it is
imported only when the command runs, so the other verbs work without it.
"""

from __future__ import annotations

import sys

import click

from ..errors import EXIT_USAGE, EscalationError


class MissingExtra(EscalationError):
    """The ``server`` extra is not installed."""

    exit_code = EXIT_USAGE


@click.command()
@click.argument("policy")
@click.option("--host", default="127.0.0.1", show_default=True, help="The address to listen on (beyond loopback, give --token-file)")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535), help="The port (0: a free one, named in the log)")
@click.option("--state", default="sqlite:///escalation-state.db", show_default=True, help="Where the state lives: sqlite:///PATH")
@click.option("--audit", "audit", default=None, help="The audit folder (default: escalation-audit/ beside the state)")
@click.option("--token-file", default=None, help="A file holding the bearer token every /v1 route then requires")
@click.option("--max-body-bytes", default=1 << 20, show_default=True, type=click.IntRange(1), help="The largest request body (413 beyond)")
@click.option("--log-level", default="info", show_default=True, type=click.Choice(["debug", "info", "warning", "error"]))
def serve(policy: str, host: str, port: int, state: str, audit: str | None, token_file: str | None, max_body_bytes: int, log_level: str) -> None:
    """Serve decisions over HTTP: POST /v1/events, GET /v1/conversations/ID, GET /v1/customers/ID, /health, /metrics, /docs.

    Exit 0 after a clean shutdown (SIGTERM or SIGINT), 1 for an invalid policy, 2 for a
    usage error or a state store that cannot be opened (held by another process, say).
    SIGHUP reloads the policy.
    """
    try:
        from ..server import ServeConfig
        from ..server import serve as run
    except ImportError as err:
        raise MissingExtra(f"`escalation serve` needs the server extra ({err.name} is missing): pip install 'escalation[server]'") from None
    config = ServeConfig(policy, host, port, state, audit, token_file, max_body_bytes, log_level)
    sys.exit(run(config))
