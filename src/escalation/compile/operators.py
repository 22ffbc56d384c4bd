"""The temporal operators, one small class each: a registry that lowering, codegen and the state codec share.

Each class knows, for the slot of state one operator keeps:

- ``key`` (which expressions share a slot), ``make`` (the :class:`~.ir.Op` of an expression);
- ``initial`` (the slot before any event) and whether each interaction needs a fresh one;
- ``update`` (§6 step 4 as the closures do it) and ``update_source`` (the same, printed for codegen);
- ``read`` / ``read_source`` / ``clock`` (an expression's value as a closure, as Python source, and
  with the instant it may next change with time alone);
- ``encode`` / ``decode`` (the slot in a JSON snapshot, and back, checked through a :class:`SlotReader`).

A new operator is one class here, registered in :data:`OPERATORS` and in :func:`operator_for`.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import deque
from collections.abc import Callable
from typing import Any, ClassVar, Protocol

from ..errors import SnapshotError
from ..lang import US, ast
from .ir import CUSTOMER, INF, INTERACTION, Clock, Fn4, Op, PatternFn


def window_count(times: deque[int], low: int) -> int:
    """How many of the (ascending) ``times`` are at or after ``low``.

    In a step the window has just dropped what left it, so the first test answers; a query
    (a later ``now``, which must not change the state) bisects, in C, instead of walking.
    """
    if not times or times[0] >= low:
        return len(times)
    return len(times) - bisect_left(times, low)


class SlotReader(Protocol):
    """What decoding a snapshot slot needs from the codec: where it is, checked integers and times, attribute values."""

    def where(self, slot: int, entry: int | None = None) -> str:
        """The slot (or an entry of it) as a message names it."""
        ...

    def show(self, value: Any) -> str:
        """A short, safe rendering of a value for a message."""
        ...

    def count(self, value: Any, where: str) -> int:
        """A non-negative integer (SnapshotError naming ``where`` otherwise)."""
        ...

    def time(self, value: Any, where: str) -> int:
        """An event time no later than the snapshot's latest event."""
        ...

    def attribute(self, op: Op, value: Any, where: str) -> Any:
        """Null or a value of the type of ``op``'s attribute."""
        ...


MakePattern = Callable[[ast.Pattern], PatternFn]


class Operator:
    """The interface every temporal operator implements (see the module docstring)."""

    kind: ClassVar[str]
    timed: ClassVar[bool] = False  # its value changes with time alone
    fresh: ClassVar[bool] = False  # each interaction needs its own initial value (a mutable one)
    initial_text: ClassVar[str] = "null"  # the initial value as a snapshot shows it, for messages
    helpers: ClassVar[dict[str, Any]] = {}  # names the source it prints calls

    def key(self, node: Any) -> tuple[Any, ...]:
        raise NotImplementedError

    def make(self, node: Any, pattern: MakePattern) -> Op:
        raise NotImplementedError

    def initial(self) -> Any:
        return None

    def update(self, s: list[Any], i: int, op: Op, reset: bool, t: int, a: dict[str, Any]) -> None:
        raise NotImplementedError

    def update_source(self, i: int, op: Op) -> list[str]:
        raise NotImplementedError

    def read(self, i: int, node: Any, fallback: Fn4 | None, default: Any) -> Fn4:
        raise NotImplementedError

    def read_source(self, i: int, node: Any, fallback: str) -> str:
        raise NotImplementedError

    def clock(self, i: int, node: Any, fallback: Clock | None, default: Any) -> Clock:
        raise NotImplementedError

    def encode(self, value: Any) -> Any:
        return value

    def decode(self, op: Op, value: Any, slot: int, reader: SlotReader) -> Any:
        raise NotImplementedError


def _window(node: ast.Count | ast.Seen) -> int | None:
    return node.window.seconds * US if node.window is not None else None


def scope_of(node: ast.Count | ast.Seen | ast.Last | ast.TimeSince) -> str:
    """The scope of an operator's slot: the customer's with `across contacts` (language.md §9), else the interaction's."""
    return CUSTOMER if node.across else INTERACTION


class Count(Operator):
    """``count P [since Q]`` and ``seen P [since Q]`` (a count above zero): how many times P happened."""

    kind = "count"
    initial_text = "0"

    def key(self, node: ast.Count | ast.Seen) -> tuple[Any, ...]:
        return ("count", node.pattern, node.since, _window(node), node.across)

    def make(self, node: ast.Count | ast.Seen, pattern: MakePattern) -> Op:
        return Op(self.kind, pattern(node.pattern), pattern(node.since) if node.since else None, source=node, scope=scope_of(node))

    def initial(self) -> Any:
        return 0

    def update(self, s: list[Any], i: int, op: Op, reset: bool, t: int, a: dict[str, Any]) -> None:
        s[i] = 0 if reset else s[i] + 1

    def update_source(self, i: int, op: Op) -> list[str]:
        return [f"    if r{i}:", f"        s[{i}] = 0", f"    elif h{i}:", f"        s[{i}] += 1"]

    def read(self, i: int, node: ast.Count | ast.Seen, fallback: Fn4 | None, default: Any) -> Fn4:
        if isinstance(node, ast.Seen):
            return lambda s, a, now, m=None: s[i] > 0
        return lambda s, a, now, m=None: s[i]

    def read_source(self, i: int, node: ast.Count | ast.Seen, fallback: str) -> str:
        return f"(s[{i}] > 0)" if isinstance(node, ast.Seen) else f"s[{i}]"

    def clock(self, i: int, node: ast.Count | ast.Seen, fallback: Clock | None, default: Any) -> Clock:
        if isinstance(node, ast.Seen):
            return lambda s, now, m: (s[i] > 0, 0, INF)
        return lambda s, now, m: (s[i], 0, INF)

    def decode(self, op: Op, value: Any, slot: int, reader: SlotReader) -> Any:
        return reader.count(value, reader.where(slot))


class WindowCount(Operator):
    """``count P [since Q] within D`` and ``seen P [since Q] within D``: the times of the P events of the last D, oldest first."""

    kind = "wcount"
    timed = True
    fresh = True
    initial_text = "[]"
    helpers: ClassVar[dict[str, Any]] = {"window_count": window_count}

    def key(self, node: ast.Count | ast.Seen) -> tuple[Any, ...]:
        return ("count", node.pattern, node.since, _window(node), node.across)

    def make(self, node: ast.Count | ast.Seen, pattern: MakePattern) -> Op:
        since = pattern(node.since) if node.since else None
        return Op(self.kind, pattern(node.pattern), since, _window(node) or 0, source=node, scope=scope_of(node))

    def initial(self) -> Any:
        return deque()

    def update(self, s: list[Any], i: int, op: Op, reset: bool, t: int, a: dict[str, Any]) -> None:
        if reset:
            s[i].clear()
        else:
            s[i].append(t)

    def update_source(self, i: int, op: Op) -> list[str]:
        return [f"    if r{i}:", f"        s[{i}].clear()", f"    elif h{i}:", f"        s[{i}].append(t)"]

    def read(self, i: int, node: ast.Count | ast.Seen, fallback: Fn4 | None, default: Any) -> Fn4:
        window = _window(node) or 0
        if isinstance(node, ast.Seen):
            return lambda s, a, now, m=None: window_count(s[i], now - window) > 0
        return lambda s, a, now, m=None: window_count(s[i], now - window)

    def read_source(self, i: int, node: ast.Count | ast.Seen, fallback: str) -> str:
        text = f"window_count(s[{i}], now - {int(_window(node) or 0)})"
        return f"({text} > 0)" if isinstance(node, ast.Seen) else text

    def clock(self, i: int, node: ast.Count | ast.Seen, fallback: Clock | None, default: Any) -> Clock:
        span = _window(node) or 0
        seen = isinstance(node, ast.Seen)

        def wcount(s: list[Any], now: int, m: dict[int, Any]) -> tuple[Any, int, float]:
            w: deque[int] = s[i]
            low = now - span
            while w and w[0] < low:
                w.popleft()
            n = len(w)
            return (n > 0 if seen else n, 0, w[0] + span + 1 if w else INF)  # the oldest leaves at w[0] + span + 1

        return wcount

    def encode(self, value: Any) -> Any:
        return list(value)

    def decode(self, op: Op, value: Any, slot: int, reader: SlotReader) -> Any:
        where = reader.where(slot)
        if not isinstance(value, list | tuple):
            raise SnapshotError(f"the snapshot's {where} must be a list of event times (a window), not {reader.show(value)}")
        times: deque[int] = deque()
        for j, t in enumerate(value):
            t = reader.time(t, reader.where(slot, j))
            if times and t < times[-1]:
                raise SnapshotError(f"the snapshot's {where} is not in ascending order of time (entry {j} is earlier than entry {j - 1})")
            times.append(t)
        return times


class Last(Operator):
    """``last A of P [else V]``: the attribute A of the latest P (V, or the attribute's default, before one)."""

    kind = "last"

    def key(self, node: ast.Last) -> tuple[Any, ...]:
        return ("last", node.attr.text, node.pattern, node.across)

    def make(self, node: ast.Last, pattern: MakePattern) -> Op:
        return Op(self.kind, pattern(node.pattern), attr=node.attr.text, source=node, scope=scope_of(node))

    def update(self, s: list[Any], i: int, op: Op, reset: bool, t: int, a: dict[str, Any]) -> None:
        s[i] = a[op.attr]

    def update_source(self, i: int, op: Op) -> list[str]:
        return [f"    if h{i}:", f"        s[{i}] = a[{op.attr!r}]"]

    def read(self, i: int, node: ast.Last, fallback: Fn4 | None, default: Any) -> Fn4:
        if fallback is not None:  # `else` a let: its value
            other = fallback
            return lambda s, a, now, m=None: other(s, None, now, m) if s[i] is None else s[i]
        return lambda s, a, now, m=None: default if s[i] is None else s[i]

    def read_source(self, i: int, node: ast.Last, fallback: str) -> str:
        return f"({fallback} if s[{i}] is None else s[{i}])"

    def clock(self, i: int, node: ast.Last, fallback: Clock | None, default: Any) -> Clock:
        if fallback is not None:
            other = fallback
            return lambda s, now, m: other(s, now, m) if s[i] is None else (s[i], 0, INF)
        return lambda s, now, m: (default if s[i] is None else s[i], 0, INF)

    def decode(self, op: Op, value: Any, slot: int, reader: SlotReader) -> Any:
        return reader.attribute(op, value, reader.where(slot))


class TimeSince(Operator):
    """``time since P``: the time of the latest P (the expression is now minus it; infinite before one)."""

    kind = "time"
    timed = True

    def key(self, node: ast.TimeSince) -> tuple[Any, ...]:
        return ("time", node.pattern, node.across)

    def make(self, node: ast.TimeSince, pattern: MakePattern) -> Op:
        return Op(self.kind, pattern(node.pattern), source=node, scope=scope_of(node))

    def update(self, s: list[Any], i: int, op: Op, reset: bool, t: int, a: dict[str, Any]) -> None:
        s[i] = t

    def update_source(self, i: int, op: Op) -> list[str]:
        return [f"    if h{i}:", f"        s[{i}] = t"]

    def read(self, i: int, node: ast.TimeSince, fallback: Fn4 | None, default: Any) -> Fn4:
        return lambda s, a, now, m=None: INF if s[i] is None else now - s[i]

    def read_source(self, i: int, node: ast.TimeSince, fallback: str) -> str:
        return f"(INF if s[{i}] is None else now - s[{i}])"

    def clock(self, i: int, node: ast.TimeSince, fallback: Clock | None, default: Any) -> Clock:
        return lambda s, now, m: (INF, 0, INF) if s[i] is None else (now - s[i], 1, INF)

    def decode(self, op: Op, value: Any, slot: int, reader: SlotReader) -> Any:
        return None if value is None else reader.time(value, reader.where(slot))


#: Every operator by its ``kind`` (the ``Op.kind`` of its slots).
OPERATORS: dict[str, Operator] = {cls.kind: cls() for cls in (Count, WindowCount, Last, TimeSince)}

#: The AST nodes that are temporal operators.
TEMPORAL = (ast.Count, ast.Seen, ast.Last, ast.TimeSince)


def operator_for(node: ast.Expr) -> Operator | None:
    """The operator of an expression node, or None when the node is not a temporal operator."""
    if isinstance(node, ast.Count | ast.Seen):
        return OPERATORS["wcount" if node.window is not None else "count"]
    if isinstance(node, ast.Last):
        return OPERATORS["last"]
    if isinstance(node, ast.TimeSince):
        return OPERATORS["time"]
    return None


def operator_of(op: Op) -> Operator:
    """The operator class of a slot."""
    return OPERATORS[op.kind]


def helpers() -> dict[str, Any]:
    """The names the operators' printed source calls, for the namespace of the generated code."""
    out: dict[str, Any] = {"INF": INF}
    for operator in OPERATORS.values():
        out.update(operator.helpers)
    return out
