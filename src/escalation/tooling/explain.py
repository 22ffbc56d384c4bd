"""Why an action was permitted or forbidden at a moment, in sentences an auditor can read.

A value read over the customer history (an operator with ``across contacts``, or a
``let`` built on one; language.md §9) is said to be so: it is read from the history of
the customer the conversation is bound to, which holds the events of the customer's
other contacts too; an unbound conversation reads its own history.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from ..check import SINCE
from ..compile import INF, CompiledPolicy, WhileRule
from ..lang import US, ast, format_time
from ..replay import Input, Replayer, input_lines
from ..runtime import Event, Interaction, Line


def _text(policy: CompiledPolicy, node: Any) -> str:
    span = node.span
    return policy.checked.source[span.start : span.end] if span.end > span.start else "…"


def _show(value: Any, kind: Any = None) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value == INF:
        return "never (it has not happened)"
    if kind in ("duration", SINCE) and isinstance(value, int):
        return _duration(value)
    return str(value)


def _duration(us: int) -> str:
    secs = us / US
    if secs >= 3600 and secs % 3600 == 0:
        return f"{secs / 3600:g}h"
    if secs >= 60 and secs % 60 == 0:
        return f"{secs / 60:g}m"
    return f"{secs:g}s"


def _reads(expr: ast.Expr) -> list[ast.Expr]:
    """The names and temporal expressions a condition reads, in source order, once each."""
    out: list[ast.Expr] = []
    seen: set[Any] = set()
    stack: list[Any] = [expr]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.NameRef, ast.Count, ast.Seen, ast.Last, ast.TimeSince)):
            key = node
            if key not in seen:
                seen.add(key)
                out.append(node)
            if not isinstance(node, ast.NameRef):
                continue
        if isinstance(node, ast.Pattern):
            continue
        stack.extend(reversed(ast.children(node)))
    return sorted(out, key=lambda n: (n.span.line, n.span.column))


_TEMPORAL = (ast.Count, ast.Seen, ast.Last, ast.TimeSince)


def reads_across(policy: CompiledPolicy, node: ast.Expr) -> bool:
    """Whether ``node`` reads the customer history: an ``across contacts`` operator in it, or in a ``let`` it names."""
    lets = {item.name.text: item.expr for item in policy.checked.policy.lets}
    stack: list[Any] = [node]
    seen: set[str] = set()
    while stack:
        item = stack.pop()
        if isinstance(item, _TEMPORAL) and getattr(item, "across", False):
            return True
        if isinstance(item, ast.NameRef) and item.name in lets and item.name not in seen:
            seen.add(item.name)
            stack.append(lets[item.name])
        elif not isinstance(item, ast.NameRef):
            stack.extend(ast.children(item))
    return False


def across_note(customer: str | None) -> str:
    """Where a customer-history value comes from, for a conversation bound to ``customer`` (or not bound)."""
    if customer is None:
        return "across contacts; this conversation is bound to no customer yet, so read from its own history"
    return f"across contacts: read from the history of customer {json.dumps(customer)}, events of its other contacts included"


def _kind_of(policy: CompiledPolicy, node: ast.Expr) -> Any:
    if isinstance(node, ast.NameRef):
        return policy.checked.let_types.get(node.name)
    if isinstance(node, ast.TimeSince):
        return SINCE
    return None


def condition_values(policy: CompiledPolicy, inter: Interaction, cond: ast.Expr, now: int, customer: str | None = None) -> list[str]:
    """The value of each name and temporal expression ``cond`` reads; those read across contacts say where from."""
    lines = []
    for node in _reads(cond):
        if isinstance(node, ast.NameRef):
            if node.name not in policy.lets:
                continue
            value = policy.lets[node.name](inter.state, None, now)
            let = next(item for item in policy.checked.policy.lets if item.name.text == node.name)
            notes = [f"let {node.name} = {_text(policy, let.expr)}"]
        else:
            value = policy.compile_expr(node, None)(inter.state, None, now)
            notes = []
        if reads_across(policy, node):
            notes.append(across_note(customer))
        name = node.name if isinstance(node, ast.NameRef) else _text(policy, node)
        lines.append(f"{name} = {_show(value, _kind_of(policy, node))}" + (f"   ({'; '.join(notes)})" if notes else ""))
    return lines


def explain_action(policy: CompiledPolicy, inter: Interaction, action: str, now: int, customer: str | None = None) -> list[str]:
    """Every rule that permits or forbids ``action``, active or not, with the values its condition reads."""
    out: list[str] = []
    forbidders: list[WhileRule] = []
    permitters: list[WhileRule] = []
    details: list[str] = []
    for rule in policy.while_rules:
        if action not in rule.permits and action not in rule.forbids:
            continue
        holds = bool(rule.cond(inter.state, None, now))
        effect = "forbids" if action in rule.forbids else "permits"
        if holds:
            (forbidders if effect == "forbids" else permitters).append(rule)
        ast_rule = next(r for r in policy.checked.policy.rules if r.name.text == rule.name)
        assert isinstance(ast_rule.trigger, ast.While)
        state = "its condition holds, so it is active" if holds else "its condition does not hold, so it has no effect now"
        details.append(f"  - rule {rule.name} {effect} {action}; {state}:")
        details.append(f"      while {_text(policy, ast_rule.trigger.cond)}")
        details.extend(f"      {line}" for line in condition_values(policy, inter, ast_rule.trigger.cond, now, customer))
        if rule.message:
            details.append(f'      because "{rule.message}"')
    default = policy.default_forbid.get(action)
    if forbidders:
        verdict = "FORBIDDEN"
        reason = "rule " + ", ".join(r.name for r in forbidders) + " forbade it" + (" (a forbid overrides a permit)" if permitters else "")
    elif permitters:
        verdict = "PERMITTED"
        reason = "rule " + ", ".join(r.name for r in permitters) + " permitted it"
    elif default is not None:
        verdict = "FORBIDDEN"
        reason = f"no rule permitted it, and its default is `forbid` (severity {default})"
    else:
        verdict = "PERMITTED"
        reason = "no rule forbade it, and actions are permitted unless a `default forbid` says otherwise"
    out.append(f"{action} was {verdict.lower()} ({verdict}): {reason}.")
    if details:
        out.append("  Rules that mention it:")
        out.extend(details)
    else:
        out.append("  No rule mentions it.")
    if default is not None:
        out.append(f"  Default: forbid, severity {default}; it applies only when no active rule permits or forbids the action.")
    return out


def explain_moment(
    policy: CompiledPolicy, line: Line, event: Event, inter: Interaction, action: str | None, customer: str | None = None
) -> list[str]:
    """The text for one event, computed from the state it meets (call this BEFORE the event is fed).

    ``customer``: the customer the conversation is bound to at this event (named in the
    first line, and where customer-history values come from).
    """
    now = event.time
    bound = f" (bound to customer {json.dumps(customer)})" if customer is not None else ""
    out = [
        f"seq {line.seq} ({line.source}), {format_time(now)}: {event.type} arrives in conversation {event.conversation!r}{bound}.",
        "Judged on the history before this event, at its time:",
    ]
    for name in [action] if action else list(policy.actions):
        out.extend("  " + text for text in explain_action(policy, inter, name, now, customer))
    if policy.vocabulary[event.type].is_action and (action is None or action == event.type):
        violation = inter.judge(event.type, now)
        if violation is None:
            out.append(f"  This event is the action {event.type} itself: it was permitted, so it is no violation.")
        else:
            out.append(
                f"  This event is the action {event.type} itself: it was a forbidden_action violation "
                f"(rule {', '.join(violation.rules)}, severity {violation.severity}): {violation.message}"
            )
    out.append("")
    return out


def explain_replay(policy: CompiledPolicy, inputs: list[Input], conversation: str, seq: int | None = None, action: str | None = None) -> Iterator[list[str]]:
    """Replay ``inputs`` as far as needed; the text of each moment an event of ``conversation`` arrived (only record ``seq``'s, if given).

    Each moment is explained from the state the event meets, before it is applied. The
    inputs are read only up to ``seq``; the caller discards them.
    """
    replayer = Replayer(policy)
    moments: list[list[str]] = []

    def before_feed(ln: Line, ev: Event, inter: Interaction) -> None:
        if ev.conversation == conversation and (seq is None or ln.seq == seq):
            moments.append(explain_moment(policy, ln, ev, inter, action, replayer.admission.customer_of(ev.conversation)))

    try:
        for line in input_lines(inputs):  # the replay's one input loop
            if seq is not None and line.seq > seq:
                break
            replayer.record(line, before_feed)
            if moments:
                yield moments.pop()
    finally:
        replayer.close()
