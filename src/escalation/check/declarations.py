"""The passes that fill in the tables: declared events and actions, names of lets and rules, lets.

They run first, in this order: :func:`declarations`, :func:`collect_names`,
:func:`let_dependencies`, :func:`let_depth_pass`, :func:`let_pass`. Afterwards the
vocabulary is complete and every let has its type (and its value, where it is a constant).
"""

from __future__ import annotations

from collections.abc import Iterator

from ..lang import RESERVED_FIELDS, EnumType, EventType, Field, Type, Value, ast
from .context import CheckState, Scope, same_type, show
from .fold import fold
from .types import infer

__all__ = ["MAX_LET_CHAIN", "collect_names", "declarations", "let_dependencies", "let_depth_pass", "let_pass"]

#: The longest chain of lets each reading the next (deeper chains would nest past what evaluation supports).
MAX_LET_CHAIN = 64


def declarations(c: CheckState) -> None:
    """`event` and `action` declarations add to the vocabulary (E014, E021, E026, E029)."""
    for decl in c.policy.decls:
        name = decl.name.text
        if name in c.vocabulary:
            where = "the standard vocabulary" if c.vocabulary[name].standard else "an earlier declaration"
            c.error("E021", f"`{name}` is already declared by {where}", decl.name.span, "use the existing name, or choose a new one")
            continue
        fields: list[Field] = []
        seen: set[str] = set()
        for f in decl.fields:
            fname = f.name.text
            if fname in RESERVED_FIELDS:
                c.error("E026", f"a field may not be named `{fname}`", f.name.span, "`conversation`, `time`, `type`, `id` and `customer` are keys of event records")
                continue
            if fname in seen:
                c.error("E029", f"the field `{fname}` is declared twice", f.name.span, "remove one of them")
                continue
            seen.add(fname)
            ftype: Type
            if f.type.base == "enum":
                members: list[str] = []
                listed: set[str] = set()
                for m in f.type.members:
                    if m.text in listed:
                        c.error("E029", f"the value `{m.text}` is listed twice", m.span, "remove one of them")
                    else:
                        listed.add(m.text)
                        members.append(m.text)
                ftype = EnumType(f"{name}.{fname}", tuple(members))
            else:
                ftype = f.type.base
            default: Value | None = None
            if f.default is not None:
                t = infer(c, f.default, Scope(), ftype)
                if t is not None and not same_type(t, ftype):
                    c.error("E014", f"the default of `{fname}` is {show(t)}, but the field holds {show(ftype)}", f.default.span)
                default = _literal_value(f.default)
            fields.append(Field(fname, ftype, default, f.default is not None))
        c.vocabulary[name] = EventType(name, decl.kind == "action", tuple(fields), standard=False)


def collect_names(c: CheckState) -> None:
    """The lets and rules by name; a name given twice is reported (E017, E018) and the first kept."""
    for item in c.policy.items:
        if isinstance(item, ast.Let):
            if item.name.text in c.lets:
                c.error("E018", f"`{item.name.text}` is defined twice", item.name.span, "rename one of the two `let`s")
            else:
                c.lets[item.name.text] = item
        elif isinstance(item, ast.Rule):
            if item.name.text in c.rules:
                c.error("E017", f"there is already a rule named `{item.name.text}`", item.name.span, "rule names must be unique; rename one")
            else:
                c.rules[item.name.text] = item


def let_dependencies(c: CheckState) -> None:
    """Order the lets so each comes after those it reads; report cycles (E015)."""
    deps: dict[str, list[str]] = {}
    for name, let in c.lets.items():
        deps[name] = [n for n in _let_refs(c, let.expr, Scope()) if n in c.lets]
    c.let_deps = deps
    state: dict[str, int] = {}  # 1 visiting, 2 done
    for root in c.lets:
        if state.get(root):
            continue
        stack: list[tuple[str, Iterator[str]]] = [(root, iter(deps[root]))]
        path = [root]
        state[root] = 1
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                stack.pop()
                path.pop()
                state[node] = 2
                c.let_order.append(node)
                continue
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt) :] + [nxt]
                let = c.lets[nxt]
                if len(cycle) == 2:
                    msg = f"`{nxt}` depends on itself"
                else:
                    msg = f"`{nxt}` depends on itself through " + " -> ".join(f"`{link}`" for link in cycle)
                c.error("E015", msg, let.name.span, "a `let` cannot use its own value; count or look back with a temporal operator instead")
                c.let_types[nxt] = None
                c.used_lets.update(cycle)
            elif not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append((nxt, iter(deps[nxt])))


def _let_refs(c: CheckState, expr: ast.Expr | None, scope: Scope) -> Iterator[str]:
    """Names in ``expr`` that would resolve to a `let` (attributes inside brackets win)."""
    if expr is None:
        return
    todo: list[tuple[object, EventType | None]] = [(expr, scope.event)]
    while todo:
        node, event = todo.pop()
        if isinstance(node, ast.NameRef):
            if event is None or event.field(node.name) is None:
                yield node.name
        elif isinstance(node, ast.Pattern):
            inner = c.vocabulary.get(node.event.text)
            if node.cond is not None:
                todo.append((node.cond, inner if inner is not None else EventType("?", False)))
        else:
            for child in ast.children(node):
                todo.append((child, event))


def let_depth_pass(c: CheckState) -> None:
    """A chain of lets each reading the next nests as deeply as one long expression (E004)."""
    depth: dict[str, int] = {}
    for name in c.let_order:
        depth[name] = 1 + max((depth.get(d, 0) for d in c.let_deps.get(name, ())), default=0)
        if depth[name] > MAX_LET_CHAIN:
            c.error(
                "E004",
                f"`{name}` sits at the end of a chain of more than {MAX_LET_CHAIN} lets, each reading the next",
                c.lets[name].name.span,
                "shorten the chain: a let can read several others directly",
            )
            c.let_types[name] = None
            return


def let_pass(c: CheckState) -> None:
    """The type of each let, and its value where it is a constant, in dependency order."""
    for name in c.let_order:
        let = c.lets[name]
        if name in c.let_types:  # part of a cycle
            continue
        c.let_types[name] = infer(c, let.expr, Scope(), None)
        c.let_values[name] = fold(let.expr, c.let_values)
    for name in c.lets:
        c.let_types.setdefault(name, None)


def _literal_value(lit: ast.Literal) -> Value:
    if isinstance(lit, ast.DurationLit):
        return lit.seconds
    if isinstance(lit, ast.NameRef):
        return lit.name
    return lit.value
