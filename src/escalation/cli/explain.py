"""`escalation explain POLICY EVENTS... --conversation ID [--seq N] [--action NAME]`: why actions were permitted or forbidden."""

from __future__ import annotations

import sys

import click

from ..api import load
from ..errors import EXIT_OK, EscalationError
from ..replay import discard_inputs, open_inputs


@click.command()
@click.argument("policy")
@click.argument("events", nargs=-1, required=True)
@click.option("--conversation", required=True, help="The conversation to explain")
@click.option("--seq", type=int, help="Explain only the moment the record with this seq (as in the audit log) arrived")
@click.option("--action", help="Explain only this action")
def explain(policy: str, events: tuple[str, ...], conversation: str, seq: int | None, action: str | None) -> None:
    """Why each action was permitted or forbidden when the conversation's events arrived."""
    from ..tooling.explain import explain_replay  # lazily: only this verb explains (start-up stays fast)

    compiled = load(policy).compiled
    if action is not None and action not in compiled.actions:
        raise EscalationError(f"`{action}` is not an action of this policy")
    inputs = open_inputs(list(events))
    found = False
    try:
        for moment in explain_replay(compiled, inputs, conversation, seq, action):
            found = True
            for text in moment:
                click.echo(text)
    finally:
        discard_inputs(inputs)
    if not found:
        where = f"record {seq}" if seq is not None else "any accepted record"
        raise EscalationError(f"conversation {conversation!r} has no event at {where}")
    sys.exit(EXIT_OK)
