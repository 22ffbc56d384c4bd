"""Lark's parse tree -> the frozen AST of :mod:`escalation.lang.ast`, every node with its span.

One Transformer, whose method names follow the rules of grammar/escalation.lark. Literals
are checked here (numbers, durations, strings, names that are reserved words); a problem
is raised as a :class:`~escalation.syntax.errors.SyntaxProblem`, which :func:`to_ast`
passes on unwrapped.
"""

from __future__ import annotations

import json
from typing import Any

import lark
from lark import Token, Transformer, v_args
from lark.exceptions import VisitError

from ..lang import MAX_DEPTH, MAX_DURATION_SECONDS, ast
from .errors import SyntaxProblem
from .grammar import RESERVED
from .source import span_of_meta, span_of_token

__all__ = ["MAX_DURATION_DIGITS", "MAX_DURATION_SECONDS", "MAX_INT", "to_ast"]

#: The largest integer literal accepted.
MAX_INT = 2**53


def _name(tok: Token) -> ast.Name:
    return ast.Name(str(tok), span_of_token(tok))


def _plain_name(tok: Token) -> ast.Name:
    """A NAME that the author chose: reserved words are refused here."""
    if str(tok) in RESERVED:
        raise SyntaxProblem("E002", f"`{tok}` is a reserved word and cannot be used as a name", span_of_token(tok), f"choose another name, such as `{tok}_value`")
    return _name(tok)


#: The most digits a duration may have; longer ones are refused here (E003). Durations of 12 digits or
#: fewer but over 36500d are refused by the checker (E039, language.md §8).
MAX_DURATION_DIGITS = 12


def _string(tok: Token) -> ast.StringLit:
    value = json.loads(str(tok))
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise SyntaxProblem("E002", "this string holds a lone surrogate escape (such as \\ud800), which is not a character", span_of_token(tok), "write the character itself, or a complete surrogate pair") from None
    return ast.StringLit(value, span_of_token(tok))


def _duration(tok: Token) -> ast.DurationLit:
    digits = str(tok)[:-1]
    if len(digits) > MAX_DURATION_DIGITS:
        raise SyntaxProblem("E003", f"the duration {str(tok)[:20]} is too long", span_of_token(tok), "durations go up to 100 years (36500d)")
    return ast.DurationLit(str(tok), span_of_token(tok))


@v_args(meta=True, inline=True)
class _ToAst(Transformer[Token, ast.Policy]):
    """Parse tree -> AST. Rule names follow grammar/escalation.lark."""

    # -- literals and names
    def int_lit(self, meta: Any, tok: Token) -> ast.IntLit:
        if len(tok) > 16 or int(str(tok)) > MAX_INT:
            raise SyntaxProblem("E003", f"the number {str(tok)[:20]} is too large", span_of_token(tok), f"numbers go up to {MAX_INT}")
        return ast.IntLit(int(str(tok)), span_of_token(tok))

    def duration_lit(self, meta: Any, tok: Token) -> ast.DurationLit:
        return _duration(tok)

    def string_lit(self, meta: Any, tok: Token) -> ast.StringLit:
        return _string(tok)

    def true_lit(self, meta: Any) -> ast.BoolLit:
        return ast.BoolLit(True, span_of_meta(meta))

    def false_lit(self, meta: Any) -> ast.BoolLit:
        return ast.BoolLit(False, span_of_meta(meta))

    def name_ref(self, meta: Any, tok: Token) -> ast.NameRef:
        return ast.NameRef(_plain_name(tok).text, span_of_token(tok))

    # -- expressions
    def group(self, meta: Any, expr: ast.Expr) -> ast.Group:
        return ast.Group(expr, span_of_meta(meta))

    def not_(self, meta: Any, operand: ast.Expr) -> ast.Not:
        return ast.Not(operand, span_of_meta(meta))

    def or_(self, meta: Any, left: ast.Expr, right: ast.Expr) -> ast.BoolOp:
        return ast.BoolOp("or", left, right, span_of_meta(meta))

    def and_(self, meta: Any, left: ast.Expr, right: ast.Expr) -> ast.BoolOp:
        return ast.BoolOp("and", left, right, span_of_meta(meta))

    def compare(self, meta: Any, left: ast.Expr, op: Token, right: ast.Expr) -> ast.Compare:
        return ast.Compare(str(op), left, right, span_of_meta(meta))

    def arith(self, meta: Any, left: ast.Expr, op: Token, right: ast.Expr) -> ast.Arith:
        return ast.Arith(str(op), left, right, span_of_meta(meta))

    def in_(self, meta: Any, left: ast.Expr, members: tuple[ast.Literal, ...]) -> ast.In:
        return ast.In(left, members, span_of_meta(meta))

    def set(self, meta: Any, *members: ast.Literal) -> tuple[ast.Literal, ...]:
        return members

    def pattern(self, meta: Any, event: Token, cond: ast.Expr | None) -> ast.Pattern:
        return ast.Pattern(_name(event), cond, span_of_meta(meta))

    def since(self, meta: Any, pattern: ast.Pattern) -> ast.Pattern:
        return pattern

    def window(self, meta: Any, tok: Token) -> ast.DurationLit:
        return self.duration_lit(meta, tok)

    def scope(self, meta: Any) -> bool:
        return True

    def count(self, meta: Any, pattern: ast.Pattern, since: ast.Pattern | None, window: ast.DurationLit | None, across: bool | None) -> ast.Count:
        return ast.Count(pattern, since, window, bool(across), span_of_meta(meta))

    def seen(self, meta: Any, pattern: ast.Pattern, since: ast.Pattern | None, window: ast.DurationLit | None, across: bool | None) -> ast.Seen:
        return ast.Seen(pattern, since, window, bool(across), span_of_meta(meta))

    def last(self, meta: Any, attr: Token, pattern: ast.Pattern, across: bool | None, default: ast.Literal | None) -> ast.Last:
        return ast.Last(_plain_name(attr), pattern, default, bool(across), span_of_meta(meta))

    def time_since(self, meta: Any, pattern: ast.Pattern, across: bool | None) -> ast.TimeSince:
        return ast.TimeSince(pattern, bool(across), span_of_meta(meta))

    def permitted_atom(self, meta: Any, action: ast.Name) -> ast.PermittedAtom:
        return ast.PermittedAtom(True, action, span_of_meta(meta))

    def forbidden_atom(self, meta: Any, action: ast.Name) -> ast.PermittedAtom:
        return ast.PermittedAtom(False, action, span_of_meta(meta))

    # -- items
    def header(self, meta: Any, name: Token, version: Token | None) -> tuple[ast.StringLit, ast.StringLit | None]:
        return _string(name), (_string(version) if version is not None else None)

    def let(self, meta: Any, name: Token, expr: ast.Expr) -> ast.Let:
        return ast.Let(_plain_name(name), expr, span_of_meta(meta))

    def effect_kw(self, meta: Any, tok: Token) -> Token:
        return tok

    def level(self, meta: Any, tok: Token) -> ast.Name:
        return _name(tok)

    def action(self, meta: Any, tok: Token) -> ast.Name:
        return _name(tok)

    def default(self, meta: Any, effect: Token, action: ast.Name, level: ast.Name | None) -> ast.Default:
        return ast.Default(str(effect), action, level, span_of_meta(meta))

    def base_type(self, meta: Any, tok: Token) -> ast.TypeRef:
        return ast.TypeRef(str(tok), (), span_of_meta(meta))

    def enum_type(self, meta: Any, *members: Token) -> ast.TypeRef:
        return ast.TypeRef("enum", tuple(_plain_name(m) for m in members), span_of_meta(meta))

    def type(self, meta: Any, t: ast.TypeRef) -> ast.TypeRef:
        return t

    def field(self, meta: Any, name: Token, type_: ast.TypeRef, default: ast.Literal | None) -> ast.FieldDecl:
        return ast.FieldDecl(_plain_name(name), type_, default, span_of_meta(meta))

    def event_decl(self, meta: Any, name: Token, *fields: ast.FieldDecl | None) -> ast.Decl:
        return ast.Decl("event", _name(name), tuple(f for f in fields if f is not None), span_of_meta(meta))

    def action_decl(self, meta: Any, name: Token, *fields: ast.FieldDecl | None) -> ast.Decl:
        return ast.Decl("action", _name(name), tuple(f for f in fields if f is not None), span_of_meta(meta))

    # -- rules
    def on_trigger(self, meta: Any, pattern: ast.Pattern, cond: ast.Expr | None) -> ast.On:
        return ast.On(pattern, cond, span_of_meta(meta))

    def while_trigger(self, meta: Any, cond: ast.Expr) -> ast.While:
        return ast.While(cond, span_of_meta(meta))

    def permission(self, meta: Any, effect: Token, action: ast.Name) -> ast.Permission:
        return ast.Permission(str(effect), action, span_of_meta(meta))

    def day_unit(self, meta: Any, tok: Token) -> str:
        return str(tok)

    def working_days(self, meta: Any, count: Token, unit: str) -> ast.WorkingDays:
        return ast.WorkingDays(self.int_lit(meta, count), unit, span_of_meta(meta))

    def require(self, meta: Any, *parts: Any) -> ast.Require:
        patterns = tuple(p for p in parts if isinstance(p, ast.Pattern))
        rest = [p for p in parts if not isinstance(p, ast.Pattern)]
        within: ast.DurationLit | ast.WorkingDays | None = None
        before: ast.Name | None = None
        if len(rest) == 2:  # within DURATION-or-working-days [before DOTTED]
            within = rest[0] if isinstance(rest[0], ast.WorkingDays) else _duration(rest[0])
            before = _name(rest[1]) if rest[1] is not None else None
        elif len(rest) == 1:  # before DOTTED
            before = _name(rest[0])
        return ast.Require(patterns, within, before, span_of_meta(meta))

    def because(self, meta: Any, tok: Token) -> ast.Because:
        return ast.Because(_string(tok), span_of_meta(meta))

    def severity(self, meta: Any, level: ast.Name) -> ast.SeverityNote:
        return ast.SeverityNote(level, span_of_meta(meta))

    def rule(self, meta: Any, name: Token, trigger: ast.Trigger, *rest: Any) -> ast.Rule:
        effects = tuple(r for r in rest if isinstance(r, (ast.Permission, ast.Require)))
        notes = tuple(r for r in rest if isinstance(r, (ast.Because, ast.SeverityNote)))
        return ast.Rule(_plain_name(name), trigger, effects, notes, span_of_meta(meta))

    # -- tests
    def arg(self, meta: Any, name: Token, value: ast.Literal) -> ast.Arg:
        return ast.Arg(_plain_name(name), value, span_of_meta(meta))

    def event_step(self, meta: Any, at: Token | None, event: Token, *args: ast.Arg) -> ast.EventStep:
        return ast.EventStep(_name(event), tuple(args), _duration(at) if at is not None else None, span_of_meta(meta))

    def permission_kw(self, meta: Any, tok: Token) -> Token:
        return tok

    def expect_permission(self, meta: Any, kw: Token, action: ast.Name) -> ast.ExpectPermission:
        return ast.ExpectPermission(str(kw) == "permitted", action, span_of_meta(meta))

    def expect_obligation(self, meta: Any, action: ast.Name, due: Token | None) -> ast.ExpectObligation:
        if due is None:
            return ast.ExpectObligation(action, None, span_of_meta(meta))
        return ast.ExpectObligation(action, _string(due) if due.type == "STRING" else _duration(due), span_of_meta(meta))

    def contact_step(self, meta: Any) -> ast.ContactStep:
        return ast.ContactStep(span_of_meta(meta))

    def test_from(self, meta: Any, tok: Token) -> ast.StringLit:
        return _string(tok)

    def violation_kind(self, meta: Any, tok: Token) -> Token:
        return tok

    def default_kw(self, meta: Any, tok: Token) -> ast.Name:
        return _name(tok)

    def violation_rule(self, meta: Any, tok: Token | ast.Name) -> ast.Name:
        return tok if isinstance(tok, ast.Name) else _name(tok)

    def expect_violation(self, meta: Any, kind: Token, rule: ast.Name | None) -> ast.ExpectViolation:
        return ast.ExpectViolation(str(kind), rule, span_of_meta(meta))

    def expect_no_violations(self, meta: Any) -> ast.ExpectNoViolations:
        return ast.ExpectNoViolations(span_of_meta(meta))

    def expect_fired(self, meta: Any, rule: Token) -> ast.ExpectFired:
        return ast.ExpectFired(_name(rule), span_of_meta(meta))

    def test(self, meta: Any, name: Token, start: ast.StringLit | None, *steps: ast.Step) -> ast.Test:
        return ast.Test(_string(name), tuple(steps), start, span_of_meta(meta))

    # -- calendars and claims
    def cal_zone(self, meta: Any, tok: Token) -> ast.CalendarZone:
        return ast.CalendarZone(_string(tok), span_of_meta(meta))

    def cal_week(self, meta: Any, *days: Token) -> ast.CalendarWeek:
        return ast.CalendarWeek(tuple(_plain_name(d) for d in days), span_of_meta(meta))

    def cal_holidays(self, meta: Any, *dates: Token) -> ast.CalendarHolidays:
        return ast.CalendarHolidays(tuple(_string(d) for d in dates), span_of_meta(meta))

    def calendar(self, meta: Any, *items: ast.CalendarItem) -> ast.Calendar:
        return ast.Calendar(tuple(items), span_of_meta(meta))

    def claim(self, meta: Any, name: Token, expr: ast.Expr) -> ast.Claim:
        return ast.Claim(_string(name), expr, span_of_meta(meta))

    def test_file(self, meta: Any, *tests: ast.Test) -> tuple[ast.Test, ...]:
        return tests

    def start(self, meta: Any, header: tuple[ast.StringLit, ast.StringLit | None], *items: ast.Item) -> ast.Policy:
        return ast.Policy(header[0], header[1], tuple(items), span_of_meta(meta))


_TRANSFORMER = _ToAst()


def _too_deep(tree: lark.Tree[Token]) -> lark.Tree[Token] | None:
    """The first subtree deeper than MAX_DEPTH, found without recursion."""
    stack: list[tuple[lark.Tree[Token], int]] = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            return node
        for child in node.children:
            if isinstance(child, lark.Tree):
                stack.append((child, depth + 1))
    return None


def to_ast(tree: lark.Tree[Token]) -> ast.Policy | tuple[ast.Test, ...]:
    """The AST of a parse tree (a Policy from ``start``, the tests from ``test_file``).

    Raises :class:`SyntaxProblem` for a tree nested more than MAX_DEPTH deep (refused before
    the recursive transformer walks it) and for a literal or name the grammar lets through
    but the language refuses.
    """
    deep = _too_deep(tree)
    if deep is not None:
        raise SyntaxProblem("E004", f"this expression is nested too deeply (more than {MAX_DEPTH} levels)", span_of_meta(deep.meta), "split it into several `let`s")
    try:
        return _TRANSFORMER.transform(tree)
    except VisitError as err:
        if isinstance(err.orig_exc, SyntaxProblem):
            raise err.orig_exc from None
        raise
