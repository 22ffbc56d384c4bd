"""Hypothesis strategies for syntactically valid policies and for messy layouts of them.

:func:`policies` builds :class:`escalation.lang.ast.Policy` trees that the parser can
produce: names are never reserved words, event and action names are dotted,
and a :class:`~escalation.lang.ast.Group` sits wherever precedence needs parentheses,
so printing a tree and parsing the text gives the same tree back. Sizes are kept
small so that property tests run in seconds.
"""

from __future__ import annotations

from typing import TypeVar

from hypothesis import strategies as st

from escalation.lang import ast
from escalation.syntax import MAX_INT, RESERVED

T = TypeVar("T")

#: Words that mean something at one place only and stay usable as names elsewhere.
CONTEXTUAL_WORDS = [
    *("int", "bool", "string", "duration", "low", "medium", "high", "critical"),
    *("obligation", "due", "violation", "forbidden_action", "missed_deadline"),
    *("unfulfilled", "no", "violations", "fired"),
    *("contacts", "days", "day", "from", "zone", "week", "holidays", "contact"),
]
#: `contact` is a name too, except as an attribute set in a test step, where it is the `contact` step (spec language.md §3).
STEP_WORD = "contact"
#: The contextual words usable as names everywhere: all but the test step `contact`.
NAME_WORDS = [w for w in CONTEXTUAL_WORDS if w != STEP_WORD]
#: The words that start a calendar item: a `week` lists names, but not these after its first day.
CALENDAR_WORDS = ("zone", "week", "holidays")
_BASE_TYPES = ("int", "bool", "string", "duration")
LEVELS = ("low", "medium", "high", "critical")
COMPARISONS = ("==", "!=", "<", "<=", ">", ">=")

# ---------------------------------------------------------------- names


def _identifier() -> st.SearchStrategy[str]:
    return st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,7}", fullmatch=True)


#: A plain name an author may choose: never a reserved word, sometimes a contextual one.
names: st.SearchStrategy[str] = st.one_of(
    _identifier().filter(lambda s: s not in RESERVED),
    st.sampled_from(NAME_WORDS),
)

#: A dotted event or action name; its parts may be any identifier, reserved or not (it is one token).
dotted_names: st.SearchStrategy[str] = st.lists(
    st.one_of(_identifier(), st.sampled_from(sorted(RESERVED))), min_size=2, max_size=3
).map(".".join)


def _name(strategy: st.SearchStrategy[str]) -> st.SearchStrategy[ast.Name]:
    return strategy.map(ast.Name)


# ---------------------------------------------------------------- literals


# Lone surrogates are refused by the parser (E002: not a character), so generated strings hold none.
_all_text = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=12)

ints = st.integers(min_value=0, max_value=MAX_INT).map(ast.IntLit)
durations = st.builds(
    lambda digits, unit: ast.DurationLit(digits + unit),
    st.one_of(st.integers(0, 36500).map(str), st.from_regex(r"0[0-9]{1,3}", fullmatch=True)),  # at most 100 years
    st.sampled_from("smhd"),
)
#: Any text but lone surrogates, control characters included (JSON escapes carry them).
strings = st.one_of(st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=12), _all_text, st.sampled_from(['"', "\\", "#", "a # b", "\n", "\u2028"])).map(
    ast.StringLit
)
bools = st.booleans().map(ast.BoolLit)
name_refs = names.map(ast.NameRef)
literals: st.SearchStrategy[ast.Literal] = st.one_of(ints, durations, strings, bools, name_refs)

# ---------------------------------------------------------------- expressions

_OR, _AND, _NOT, _CMP, _SUM, _ATOM = range(1, 7)


def _precedence(expr: ast.Expr) -> int:
    if isinstance(expr, ast.BoolOp):
        return _OR if expr.op == "or" else _AND
    if isinstance(expr, ast.Not):
        return _NOT
    if isinstance(expr, (ast.Compare, ast.In)):
        return _CMP
    if isinstance(expr, ast.Arith):
        return _SUM
    return _ATOM


def _wrap(expr: ast.Expr, minimum: int) -> ast.Expr:
    return ast.Group(expr) if _precedence(expr) < minimum else expr


def parenthesize(expr: ast.Expr) -> ast.Expr:
    """``expr`` with a Group around every operand that binds looser than its place allows.

    This is what an author must write for the parser to build this tree, so it is
    also the tree the parser returns for the printed text.
    """
    if isinstance(expr, ast.Group):
        return ast.Group(parenthesize(expr.expr))
    if isinstance(expr, ast.Not):
        return ast.Not(_wrap(parenthesize(expr.operand), _NOT))
    if isinstance(expr, ast.BoolOp):
        level = _precedence(expr)
        return ast.BoolOp(expr.op, _wrap(parenthesize(expr.left), level), _wrap(parenthesize(expr.right), level + 1))
    if isinstance(expr, ast.Compare):
        return ast.Compare(expr.op, _wrap(parenthesize(expr.left), _SUM), _wrap(parenthesize(expr.right), _SUM))
    if isinstance(expr, ast.Arith):
        return ast.Arith(expr.op, _wrap(parenthesize(expr.left), _SUM), _wrap(parenthesize(expr.right), _ATOM))
    if isinstance(expr, ast.In):
        return ast.In(_wrap(parenthesize(expr.left), _SUM), expr.members)
    if isinstance(expr, ast.Count):
        return ast.Count(_fix_pattern(expr.pattern), _fix_optional(expr.since), expr.window, expr.across)
    if isinstance(expr, ast.Seen):
        return ast.Seen(_fix_pattern(expr.pattern), _fix_optional(expr.since), expr.window, expr.across)
    if isinstance(expr, ast.Last):
        return ast.Last(expr.attr, _fix_pattern(expr.pattern), expr.default, expr.across)
    if isinstance(expr, ast.TimeSince):
        return ast.TimeSince(_fix_pattern(expr.pattern), expr.across)
    return expr


def _fix_pattern(pattern: ast.Pattern) -> ast.Pattern:
    return ast.Pattern(pattern.event, parenthesize(pattern.cond) if pattern.cond is not None else None)


def _fix_optional(pattern: ast.Pattern | None) -> ast.Pattern | None:
    return _fix_pattern(pattern) if pattern is not None else None


def _optional(strategy: st.SearchStrategy[T]) -> st.SearchStrategy[T | None]:
    return st.one_of(st.none(), strategy)


def _patterns_over(cond: st.SearchStrategy[ast.Expr]) -> st.SearchStrategy[ast.Pattern]:
    return st.builds(ast.Pattern, _name(dotted_names), _optional(cond))


def _temporals(cond: st.SearchStrategy[ast.Expr]) -> st.SearchStrategy[ast.Expr]:
    pattern = _patterns_over(cond)
    across = st.booleans()
    return st.one_of(
        st.builds(ast.Count, pattern, _optional(pattern), _optional(durations), across),
        st.builds(ast.Seen, pattern, _optional(pattern), _optional(durations), across),
        st.builds(ast.Last, _name(names), pattern, _optional(literals), across),
        st.builds(ast.TimeSince, pattern, across),
    )


#: `permitted A` / `forbidden A` (the parser takes them anywhere; the checker only in a claim).
permitted_atoms = st.builds(ast.PermittedAtom, st.booleans(), _name(dotted_names))


def _compound(children: st.SearchStrategy[ast.Expr]) -> st.SearchStrategy[ast.Expr]:
    return st.one_of(
        st.builds(ast.Group, children),
        st.builds(ast.Not, children),
        st.builds(ast.BoolOp, st.sampled_from(("and", "or")), children, children),
        st.builds(ast.Compare, st.sampled_from(COMPARISONS), children, children),
        st.builds(ast.Arith, st.sampled_from("+-"), children, children),
        st.builds(ast.In, children, st.lists(literals, min_size=1, max_size=3).map(tuple)),
        _temporals(children),
    )


_leaves: st.SearchStrategy[ast.Expr] = st.one_of(literals, _temporals(st.nothing()), permitted_atoms)

#: A valid expression tree (with the Groups that its printed form needs).
expressions: st.SearchStrategy[ast.Expr] = st.recursive(_leaves, _compound, max_leaves=8).map(parenthesize)

patterns: st.SearchStrategy[ast.Pattern] = _patterns_over(expressions)

# ---------------------------------------------------------------- items

_enum_members = st.lists(names, min_size=2, max_size=4).filter(lambda ms: ms[0] not in _BASE_TYPES)
type_refs = st.one_of(
    st.sampled_from(_BASE_TYPES).map(ast.TypeRef),
    _enum_members.map(lambda ms: ast.TypeRef("enum", tuple(ast.Name(m) for m in ms))),
)
fields = st.builds(ast.FieldDecl, _name(names), type_refs, _optional(literals))
decls = st.builds(ast.Decl, st.sampled_from(("event", "action")), _name(dotted_names), st.lists(fields, max_size=3).map(tuple))
lets = st.builds(ast.Let, _name(names), expressions)
levels = _name(st.sampled_from(LEVELS))
defaults = st.builds(ast.Default, st.sampled_from(("permit", "forbid")), _name(dotted_names), _optional(levels))

triggers: st.SearchStrategy[ast.Trigger] = st.one_of(
    st.builds(ast.On, patterns, _optional(expressions)),
    st.builds(ast.While, expressions),
)


#: `N working days` (the unit as `fmt` writes it: `day` after 1; it takes no part in equality anyway).
working_days = st.integers(0, MAX_INT).map(lambda n: ast.WorkingDays(ast.IntLit(n), "day" if n == 1 else "days"))


@st.composite
def requires(draw: st.DrawFn) -> ast.Require:
    """``require P or Q within D before E``: within, before, or both."""
    pats = tuple(draw(st.lists(patterns, min_size=1, max_size=3)))
    shape = draw(st.sampled_from(("within", "before", "both")))
    within = draw(st.one_of(durations, working_days)) if shape != "before" else None
    before = ast.Name(draw(dotted_names)) if shape != "within" else None
    return ast.Require(pats, within, before)


effects: st.SearchStrategy[ast.Effect] = st.one_of(
    st.builds(ast.Permission, st.sampled_from(("permit", "forbid")), _name(dotted_names)),
    requires(),
)
notes: st.SearchStrategy[ast.Note] = st.one_of(
    st.builds(ast.Because, strings),
    st.builds(ast.SeverityNote, levels),
)
rules = st.builds(
    ast.Rule,
    _name(names),
    triggers,
    st.lists(effects, min_size=1, max_size=3).map(tuple),
    st.lists(notes, max_size=2).map(tuple),
)

steps: st.SearchStrategy[ast.Step] = st.one_of(
    st.builds(
        ast.EventStep,
        _name(dotted_names),
        st.lists(st.builds(ast.Arg, _name(names.filter(lambda n: n != STEP_WORD)), literals), max_size=3).map(tuple),
        _optional(durations),
    ),
    st.just(ast.ContactStep()),
    st.builds(ast.ExpectPermission, st.booleans(), _name(dotted_names)),
    st.builds(ast.ExpectObligation, _name(dotted_names), _optional(st.one_of(durations, strings))),
    st.builds(
        ast.ExpectViolation,
        st.sampled_from(("forbidden_action", "missed_deadline", "unfulfilled")),
        _optional(_name(st.one_of(names, st.just("default")))),
    ),
    st.just(ast.ExpectNoViolations()),
    st.builds(ast.ExpectFired, _name(names)),
)
tests = st.builds(ast.Test, strings, st.lists(steps, max_size=5).map(tuple), _optional(strings))

_week_days = st.tuples(names, st.lists(names.filter(lambda n: n not in CALENDAR_WORDS), max_size=6)).map(lambda t: (t[0], *t[1]))
calendar_items: st.SearchStrategy[ast.CalendarItem] = st.one_of(
    st.builds(ast.CalendarZone, strings),
    _week_days.map(lambda days: ast.CalendarWeek(tuple(ast.Name(d) for d in days))),
    st.lists(strings, min_size=1, max_size=3).map(lambda ds: ast.CalendarHolidays(tuple(ds))),
)
calendars = st.builds(ast.Calendar, st.lists(calendar_items, max_size=4).map(tuple))
claims = st.builds(ast.Claim, strings, expressions)

items: st.SearchStrategy[ast.Item] = st.one_of(lets, defaults, decls, calendars, rules, tests, claims)


def policies(max_items: int = 6) -> st.SearchStrategy[ast.Policy]:
    """A whole policy: a header (version optional) and up to ``max_items`` items of every kind."""
    return st.builds(ast.Policy, strings, _optional(strings), st.lists(items, max_size=max_items).map(tuple))


# ---------------------------------------------------------------- messy layouts and comments

comment_texts: st.SearchStrategy[str] = st.text(alphabet=st.characters(exclude_characters="\n\r", exclude_categories=("Cs",)), max_size=15).map(
    lambda body: ("#" + body).rstrip()
)


def _token_gaps(text: str) -> list[int]:
    """Offsets of the spaces between tokens (not inside strings) in comment-free source."""
    gaps: list[int] = []
    in_string = False
    i = 0
    while i < len(text):
        ch = text[i]
        if in_string:
            if ch == "\\":
                i += 2
                continue
            if ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch == " ":
            gaps.append(i)
        i += 1
    return gaps


@st.composite
def messy_layouts(draw: st.DrawFn, clean: str) -> str:
    """``clean`` (comment-free source) with some token gaps widened or broken across lines,
    blank lines added, and own-line and end-of-line comments sprinkled in."""
    chars = list(clean)
    for gap in _token_gaps(clean):
        choice = draw(st.sampled_from(("keep", "keep", "keep", "wide", "newline", "blank")))
        if choice == "wide":
            chars[gap] = "   "
        elif choice == "newline":
            chars[gap] = "\n    "
        elif choice == "blank":
            chars[gap] = "\n\n\t"
    lines = "".join(chars).split("\n")
    out: list[str] = []
    for line in lines:
        if draw(st.integers(0, 5)) == 0:
            out.append(" " * draw(st.integers(0, 4)) + draw(comment_texts))
        if draw(st.integers(0, 6)) == 0:
            out.append("")
        if line.strip() and draw(st.integers(0, 4)) == 0:
            line += " " * draw(st.integers(1, 3)) + draw(comment_texts)
        out.append(line)
    if draw(st.booleans()):
        out.append(draw(comment_texts))
    return "\n".join(out)
