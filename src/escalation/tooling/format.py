"""The canonical layout of a policy, with the author's comments kept where they were.

:func:`format_source` parses, prints, then re-parses its own output and refuses
to return text whose tree or comments differ from the input's: a formatter that
silently changes a policy's meaning is worse than none.

The layout, in short: the header, a blank line, then the items; ``rule`` and
``test`` blocks indented by two spaces with one construct per line and one blank
line around each block; between one-line items a single blank line where the
author left one or more; single spaces around operators; strings re-encoded as
JSON; durations and parentheses as written. Own-line comments stay before the
construct that followed them; end-of-line comments stay at the end of the line
that holds the last token of their source line.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Sequence

import attrs

from .. import syntax as parser
from ..errors import EXIT_POLICY, EscalationError, PolicyError
from ..lang import ast
from ..syntax.unparse import format_expr, format_pattern, format_span, format_string

__all__ = ["FormatError", "check_formatted", "format_expr", "format_policy", "format_source", "format_tests_source"]

_INDENT = "  "


class FormatError(EscalationError):
    """The formatter's output does not say what its input said; raised instead of returning it."""

    exit_code = EXIT_POLICY  # `fmt` counts the file as failed, as for a policy with errors


def _type(type_ref: ast.TypeRef) -> str:
    if type_ref.base == "enum":
        return " | ".join(m.text for m in type_ref.members)
    return type_ref.base


def _field(field: ast.FieldDecl) -> str:
    text = f"{field.name.text}: {_type(field.type)}"
    if field.default is not None:
        text += f" = {format_expr(field.default)}"
    return text


def _one_line_item(item: ast.Let | ast.Default | ast.Decl) -> str:
    if isinstance(item, ast.Let):
        return f"let {item.name.text} = {format_expr(item.expr)}"
    if isinstance(item, ast.Default):
        text = f"default {item.effect} {item.action.text}"
        if item.severity is not None:
            text += f" severity {item.severity.text}"
        return text
    if not item.fields:
        return f"{item.kind} {item.name.text}"
    return f"{item.kind} {item.name.text} {{ {', '.join(_field(f) for f in item.fields)} }}"


def _trigger(trigger: ast.Trigger) -> str:
    if isinstance(trigger, ast.While):
        return f"while {format_expr(trigger.cond)}"
    text = f"on {format_pattern(trigger.pattern)}"
    if trigger.cond is not None:
        text += f" if {format_expr(trigger.cond)}"
    return text


def _effect(effect: ast.Effect) -> str:
    if isinstance(effect, ast.Permission):
        return f"{effect.effect} {effect.action.text}"
    text = "require " + " or ".join(format_pattern(p) for p in effect.patterns)
    if effect.within is not None:
        text += f" within {format_span(effect.within)}"
    if effect.before is not None:
        text += f" before {effect.before.text}"
    return text


def _note(note: ast.Note) -> str:
    if isinstance(note, ast.Because):
        return f"because {format_string(note.text.value)}"
    return f"severity {note.level.text}"


def _step(step: ast.Step) -> str:
    if isinstance(step, ast.EventStep):
        text = f"at {step.at.text} " if step.at is not None else ""
        text += step.event.text
        return text + "".join(f" {arg.name.text}={format_expr(arg.value)}" for arg in step.args)
    if isinstance(step, ast.ExpectPermission):
        return f"expect {'permitted' if step.permitted else 'forbidden'} {step.action.text}"
    if isinstance(step, ast.ContactStep):
        return "contact"
    if isinstance(step, ast.ExpectObligation):
        if step.due is None:
            due = ""
        elif isinstance(step.due, ast.StringLit):
            due = f" due {format_string(step.due.value)}"
        else:
            due = f" due {step.due.text}"
        return f"expect obligation {step.action.text}{due}"
    if isinstance(step, ast.ExpectViolation):
        rule = f" {step.rule.text}" if step.rule is not None else ""
        return f"expect violation {step.kind}{rule}"
    if isinstance(step, ast.ExpectNoViolations):
        return "expect no violations"
    return f"expect fired {step.rule.text}"


def _calendar_item(item: ast.CalendarItem) -> str:
    if isinstance(item, ast.CalendarZone):
        return f"zone {format_string(item.name.value)}"
    if isinstance(item, ast.CalendarWeek):
        return "week " + " ".join(d.text for d in item.days)
    return "holidays " + ", ".join(format_string(d.value) for d in item.dates)


# ---------------------------------------------------------------- layout with comments


@attrs.define
class _Line:
    """One output line and the source lines its construct came from (where its comments attach)."""

    depth: int
    text: str
    first: int  # first source line of the construct
    last: int  # last source line of the construct
    before: list[ast.Comment] = attrs.Factory(list)  # own-line comments placed just above
    trailing: list[ast.Comment] = attrs.Factory(list)  # end-of-line comments; at most one stays trailing


@attrs.define
class _Unit:
    """The header, or one item: the top-level pieces that blank lines separate."""

    lines: list[_Line]
    block: bool  # a `rule` or `test` block: one blank line around it, always


def _line(depth: int, text: str, span_first: int, span_last: int) -> _Line:
    return _Line(depth, text, span_first, max(span_first, span_last))


def _units(policy: ast.Policy) -> list[_Unit]:
    """The policy as output lines grouped by item, each line tagged with its source lines."""
    header = f"policy {format_string(policy.name.value)}"
    header_end = policy.name.span.end_line
    if policy.version is not None:
        header += f" version {format_string(policy.version.value)}"
        header_end = policy.version.span.end_line
    units = [_Unit([_line(0, header, policy.span.line, header_end)], block=False)]
    for item in policy.items:
        span = item.span
        if isinstance(item, ast.Rule):
            lines = [_line(0, f"rule {item.name.text} {{", span.line, item.name.span.end_line)]
            body: list[tuple[str, ast.Trigger | ast.Effect | ast.Note]] = [(_trigger(item.trigger), item.trigger)]
            body += [(_effect(e), e) for e in item.effects]
            body += [(_note(n), n) for n in item.notes]
            lines += [_line(1, text, node.span.line, node.span.end_line) for text, node in body]
            lines.append(_line(0, "}", span.end_line, span.end_line))
            units.append(_Unit(lines, block=True))
        elif isinstance(item, ast.Test):
            start = f" from {format_string(item.start.value)}" if item.start is not None else ""
            head_end = item.start.span.end_line if item.start is not None else item.name.span.end_line
            lines = [_line(0, f"test {format_string(item.name.value)}{start} {{", span.line, head_end)]
            lines += [_line(1, _step(s), s.span.line, s.span.end_line) for s in item.steps]
            lines.append(_line(0, "}", span.end_line, span.end_line))
            units.append(_Unit(lines, block=True))
        elif isinstance(item, ast.Calendar):
            lines = [_line(0, "calendar {", span.line, span.line)]
            lines += [_line(1, _calendar_item(i), i.span.line, i.span.end_line) for i in item.items]
            lines.append(_line(0, "}", span.end_line, span.end_line))
            units.append(_Unit(lines, block=True))
        elif isinstance(item, ast.Claim):
            lines = [_line(0, f"claim {format_string(item.name.value)} {{", span.line, item.name.span.end_line)]
            lines.append(_line(1, f"always {format_expr(item.expr)}", item.expr.span.line, item.expr.span.end_line))
            lines.append(_line(0, "}", span.end_line, span.end_line))
            units.append(_Unit(lines, block=True))
        else:
            units.append(_Unit([_line(0, _one_line_item(item), span.line, span.end_line)], block=False))
    return units


def _place_comments(lines: list[_Line], comments: Sequence[ast.Comment]) -> list[ast.Comment]:
    """Attach each comment to an output line; returns those that follow the last construct.

    An own-line comment goes above the first construct that ends after it (the one
    that followed it, or the one it sits inside). An end-of-line comment goes on the
    last construct that starts on or before its line, which is the one holding that
    line's last token. A line keeps one end-of-line comment; any others move above it.
    """
    firsts = [line.first for line in lines]
    lasts = [line.last for line in lines]
    at_end: list[ast.Comment] = []
    for comment in sorted(comments, key=lambda c: (c.line, c.column)):
        if comment.own_line:
            index = bisect.bisect_right(lasts, comment.line)
            if index == len(lines):
                at_end.append(comment)
            else:
                lines[index].before.append(comment)
        else:
            index = max(0, bisect.bisect_right(firsts, comment.line) - 1)
            lines[index].trailing.append(comment)
    for line in lines:
        if len(line.trailing) > 1:
            line.before.extend(line.trailing[:-1])
            line.before.sort(key=lambda c: (c.line, c.column))
            del line.trailing[:-1]
    return at_end


def _render(units: list[_Unit], at_end: list[ast.Comment]) -> str:
    """Join the lines, placing blank lines: around blocks always, elsewhere where the author had any."""
    out: list[str] = []
    # The previous top-level entry: (last source line, its unit, whether that unit is a block).
    previous: tuple[int, int, bool] | None = None

    def top_level(first: int, last: int, unit: int, block: bool) -> None:
        nonlocal previous
        if previous is not None:
            prev_last, prev_unit, prev_block = previous
            if prev_unit == 0 and unit != 0:
                blank = True  # the header is always followed by one blank line
            elif prev_unit != unit and (prev_block or block):
                blank = True
            else:
                blank = first - prev_last > 1
            if blank:
                out.append("")
        previous = (last, unit, block)

    for number, unit in enumerate(units):
        for position, line in enumerate(unit.lines):
            indent = _INDENT * line.depth
            if position == 0:
                for comment in line.before:
                    where = min(comment.line, line.first)
                    top_level(where, where, number, unit.block)
                    out.append(comment.text.rstrip())
                top_level(line.first, unit.lines[-1].last, number, unit.block)
            else:
                # Comments above a closing brace belong to the block's body.
                comment_indent = _INDENT * max(line.depth, 1)
                out.extend(comment_indent + comment.text.rstrip() for comment in line.before)
            text = indent + line.text
            if line.trailing:
                text += "  " + line.trailing[0].text.rstrip()
            out.append(text)
    for comment in at_end:
        top_level(comment.line, comment.line, len(units), False)
        out.append(comment.text.rstrip())
    return "\n".join(out) + "\n"


def format_policy(policy: ast.Policy, comments: list[ast.Comment]) -> str:
    """The canonical text of ``policy``, with ``comments`` (from :func:`parser.extract_comments`) kept in place.

    Comment placement and blank lines follow the spans on the nodes; a tree built
    by hand (spans all at line 1) formats without blank lines between one-line items.
    """
    units = _units(policy)
    at_end = _place_comments([line for unit in units for line in unit.lines], comments)
    return _render(units, at_end)


def format_source(text: str, path: str = "<policy>") -> str:
    """Format policy source, refusing (with :class:`FormatError`) output that parses differently.

    Syntax errors in ``text`` propagate as :class:`PolicyError`.
    """
    policy = parser.parse(text, path)
    comments = parser.extract_comments(text)
    formatted = format_policy(policy, comments)
    check_formatted(policy, comments, formatted, path)
    return formatted


def check_formatted(policy: ast.Policy, comments: Sequence[ast.Comment], formatted: str, path: str = "<policy>") -> None:
    """The formatter's check of its own output: raise :class:`FormatError` unless ``formatted`` says what ``policy`` and ``comments`` said.

    ``formatted`` must parse to the same tree and hold the same comments (their text, trailing blanks aside).
    """
    refusal = "the formatter refused its own output (a formatter bug, please report it)"
    try:
        again = parser.parse(formatted, path)
    except PolicyError as err:
        raise FormatError(f"formatting {path} would produce text that no longer parses ({err}); {refusal}") from None
    if again != policy:
        raise FormatError(f"formatting {path} would change what the policy says; {refusal}")
    before = Counter(c.text.rstrip() for c in comments)
    after = Counter(c.text for c in parser.extract_comments(formatted))
    if before != after:
        lost = sorted((before - after).elements()) or sorted((after - before).elements())
        raise FormatError(f"formatting {path} would lose or change the comment `{lost[0]}`; {refusal}")


def format_tests_source(text: str, path: str = "<tests>") -> str:
    """Format a sibling ``NAME.test.esc`` (only `test` blocks) with the same layout and checks."""
    tests = parser.parse_tests(text, path)
    comments = parser.extract_comments(text)
    holder = ast.Policy(ast.StringLit(""), None, tests)
    formatted = format_policy(holder, comments)
    header = 'policy ""\n\n'
    if not formatted.startswith(header):  # pragma: no cover - the layout always starts with the header
        raise FormatError(f"cannot format {path}: unexpected layout")
    formatted = formatted[len(header) :]
    refusal = "the formatter refused its own output (a formatter bug, please report it)"
    try:
        again = parser.parse_tests(formatted, path)
    except PolicyError as err:
        raise FormatError(f"formatting {path} would produce text that no longer parses ({err}); {refusal}") from None
    if again != tests:
        raise FormatError(f"formatting {path} would change what the tests say; {refusal}")
    if Counter(c.text.rstrip() for c in comments) != Counter(c.text for c in parser.extract_comments(formatted)):
        raise FormatError(f"formatting {path} would lose or change a comment; {refusal}")
    return formatted
