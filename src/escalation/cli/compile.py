"""`escalation compile POLICY [--show]`: check and compile a policy; show the generated Python of its step functions."""

from __future__ import annotations

import sys

import click

from ..api import load
from ..errors import EXIT_OK


@click.command("compile")
@click.argument("policy")
@click.option("--show", is_flag=True, help="Print the Python generated for the policy's step functions")
def compile_cmd(policy: str, show: bool) -> None:
    """Check and compile POLICY; with --show, print the generated Python (for debugging speed work)."""
    compiled = load(policy).compiled
    if show:
        click.echo(compiled.generated)
    plans = compiled.plans
    click.echo(
        f"{policy}: {len(compiled.rule_order)} rules, {len(compiled.ops)} temporal operators, "
        f"{len(plans)} event types, {sum(len(p.step5) for p in plans.values())} rule evaluations across all step functions",
        err=True,
    )
    sys.exit(EXIT_OK)
