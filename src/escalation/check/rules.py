"""The passes over the policy's items: defaults, rules, and obligations that cannot be met.

They run after :mod:`.declarations`, so every name they meet is declared or reported, and
every let has its type and constant value.
"""

from __future__ import annotations

from ..lang import BOOL, ast
from .context import CheckState, Scope, show
from .fold import fold
from .names import event_type
from .types import check_pattern, infer

__all__ = ["default_pass", "obligation_pass", "rule_pass"]


def default_pass(c: CheckState) -> None:
    """The `default` lines: one per action, of an action (E019, E022, W004); fills in ``c.defaults``."""
    seen: dict[str, ast.Default] = {}
    for d in c.policy.defaults:
        if event_type(c, d.action, actions_only=True, what="only actions have defaults") is None:
            continue
        if d.action.text in seen:
            c.error("E019", f"`{d.action.text}` already has a default (line {seen[d.action.text].span.line})", d.span, "keep one `default` line per action")
            continue
        seen[d.action.text] = d
        if d.severity is not None and d.effect == "permit":
            c.warning("W004", "a severity on `default permit` has no effect", d.severity.span, "severities apply to violations; a permitted action is never one")
    c.defaults = seen


def rule_pass(c: CheckState) -> None:
    """Each rule's trigger, conditions, effects and notes (E014, E020, E022, E023, W001, W002)."""
    for rule in c.policy.rules:
        trigger = rule.trigger
        if isinstance(trigger, ast.On):
            check_pattern(c, trigger.pattern)
            if trigger.cond is not None:
                _condition(c, trigger.cond, rule, "`if`")
        else:
            _condition(c, trigger.cond, rule, "`while`")
        for effect in rule.effects:
            if isinstance(effect, ast.Permission):
                if isinstance(trigger, ast.On):
                    c.error(
                        "E023",
                        f"`{effect.effect}` in an `on` rule has no effect: permissions hold while a condition holds",
                        effect.span,
                        f"write `while <condition>` instead of `on …`, or use `require` for something owed after `{trigger.pattern.event.text}`",
                    )
                verb = "permitted" if effect.effect == "permit" else "forbidden"
                et = event_type(c, effect.action, actions_only=True, what=f"only actions can be {verb}")
                if et is not None and effect.effect == "permit" and not _default_forbidden(c, effect.action.text):
                    c.warning(
                        "W001",
                        f"`{effect.action.text}` is permitted by default, so this `permit` has no effect",
                        effect.span,
                        f"add `default forbid {effect.action.text}` if it should be forbidden until a rule permits it",
                    )
            else:
                for pattern in effect.patterns:
                    check_pattern(c, pattern, actions_only=True, what="only actions can be required")
                if effect.before is not None:
                    event_type(c, effect.before)
        notes: dict[type, ast.Note] = {}
        for note in rule.notes:
            if type(note) in notes:
                word = "because" if isinstance(note, ast.Because) else "severity"
                c.error("E020", f"rule `{rule.name.text}` has a second `{word}`", note.span, f"a rule has at most one `{word}`; merge them")
            notes.setdefault(type(note), note)


def _default_forbidden(c: CheckState, action: str) -> bool:
    d = c.defaults.get(action)
    return d is not None and d.effect == "forbid"


def _condition(c: CheckState, cond: ast.Expr, rule: ast.Rule, where: str) -> None:
    t = infer(c, cond, Scope(), BOOL)
    if t is not None and t != BOOL:
        c.error("E014", f"the {where} condition of `{rule.name.text}` must be true or false, not {show(t)}", cond.span, "compare it: `count agent.warn >= 2`")
    elif fold(cond, c.let_values) is False:
        c.warning("W002", f"the condition of rule `{rule.name.text}` can never hold", cond.span, "check the comparison and the `let`s it reads")


def obligation_pass(c: CheckState) -> None:
    """A `require` all of whose actions are forbidden whenever it is created is an error (E024)."""
    permitted_somewhere: set[str] = set()
    always_forbidden: set[str] = set()
    for rule in c.policy.rules:
        if not isinstance(rule.trigger, ast.While):
            continue
        value = fold(rule.trigger.cond, c.let_values)
        for effect in rule.effects:
            if isinstance(effect, ast.Permission):
                if effect.effect == "permit" and value is not False:
                    permitted_somewhere.add(effect.action.text)
                if effect.effect == "forbid" and value is True:
                    always_forbidden.add(effect.action.text)
    for action, d in c.defaults.items():
        if d.effect == "forbid" and action not in permitted_somewhere:
            always_forbidden.add(action)
    for rule in c.policy.rules:
        for effect in rule.effects:
            if not isinstance(effect, ast.Require) or not effect.patterns:
                continue
            actions = [p.event.text for p in effect.patterns]
            if all(a in always_forbidden for a in actions):
                names = ", ".join(f"`{a}`" for a in dict.fromkeys(actions))
                c.error(
                    "E024",
                    f"this obligation can only be met by a forbidden action ({names}), so meeting it is itself a violation",
                    effect.span,
                    "permit the action in a `while` rule, or require another action",
                )
