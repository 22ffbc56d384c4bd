"""The compiled policy as data: slots, rules, require specs, per-type plans, the generated code.

Nothing here computes anything beyond small look-ups over its own fields: lowering
(lower.py) builds these records, codegen (codegen.py) prints Python from them, and
the runtime runs them. A temporal operator's slot (:class:`Op`) names its operator by
``kind`` (the registry in operators.py) and its ``scope``: one interaction's, or (written
`across contacts`, language.md §9) its customer's, which runtime/customer.py keeps and a
bound interaction reads in place of its own.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from types import CodeType
from typing import Any, NamedTuple, Protocol

import attrs

from ..check import CheckedPolicy
from ..lang import EventType, ast
from ..lang.calendar import DEFAULT_CALENDAR, Calendar

#: A compiled expression: ``fn(state, attrs, now)``.
Fn = Callable[[list[Any], dict[str, Any] | None, int], Any]


class Fn4(Protocol):
    """The inner form of a compiled expression: ``fn(state, attrs, now, memo)``; ``memo`` maps a let's index to its value.

    ``memo`` defaults to None, so that an expression that reads no memoised let is its own three-argument closure.
    """

    def __call__(self, s: list[Any], a: dict[str, Any] | None, now: int, m: dict[int, Any] | None = None, /) -> Any: ...


#: A clock closure ``fn(state, now, memo) -> (value, slope, next)``: ``value`` changes with time alone at the
#: rate ``slope`` (per microsecond; numbers only) until ``next``, the earliest instant it may do otherwise.
Clock = Callable[[list[Any], int, dict[int, Any]], tuple[Any, int, float]]
#: A while rule's clock: ``fn(state, now) -> (value, next instant it may change)``.
RuleClock = Callable[[list[Any], int], tuple[Any, float]]

INF = float("inf")
LEVEL_RANK = {"low": 0, "medium": 1, "high": 2, "critical": 3}

#: The scope of a slot kept for one interaction (conversation).
INTERACTION = "interaction"
#: The scope of a slot kept for one customer (`across contacts`, language.md §9): runtime/customer.py holds it.
CUSTOMER = "customer"


@attrs.frozen(slots=True)
class PatternFn:
    """A compiled pattern: the event type, and the bracket condition (None: always)."""

    event: str
    cond: Fn | None
    source: ast.Pattern


@attrs.frozen(slots=True)
class Op:
    """One temporal operator's slot of state. ``kind`` names its class in operators.py: count | wcount | last | time."""

    kind: str
    pattern: PatternFn
    since: PatternFn | None = None
    window: int = 0  # microseconds, for wcount
    attr: str = ""  # for last
    source: ast.Expr | None = None
    scope: str = INTERACTION  # whose state the slot is: one interaction's, or its customer's (CUSTOMER)


@attrs.frozen(slots=True)
class RequireSpec:
    """A ``require`` effect: the obligation it creates."""

    index: int  # position in CompiledPolicy.requires (snapshots refer to it)
    rule: str
    alternatives: tuple[PatternFn, ...]
    actions: tuple[str, ...]
    within: int | None  # microseconds
    before: str | None
    severity: str
    message: str | None
    working_days: int | None = None  # `within N working days`: due at policy.calendar.due(t, N) (language.md §10)


@attrs.frozen(slots=True)
class OnRule:
    """An ``on`` rule: fires when its pattern matches (and its ``if`` holds)."""

    index: int  # source order among all rules
    name: str
    pattern: PatternFn
    cond: Fn | None
    requires: tuple[RequireSpec, ...]


@attrs.frozen(slots=True)
class WhileRule:
    """A ``while`` rule: active while its condition holds; permits, forbids and requires on becoming active."""

    index: int
    position: int  # among the while rules
    name: str
    cond: Fn
    permits: frozenset[str]
    forbids: frozenset[str]
    requires: tuple[RequireSpec, ...]
    severity: str
    message: str | None
    reads: frozenset[int] = frozenset()  # the operator slots its condition reads (through lets)
    timed: bool = False  # it reads a window or a `time since`, so its value changes with time alone
    timer: int = -1  # among the timed rules (Interaction.wake), -1 when not timed
    clock: RuleClock | None = None  # timed: (value, next instant it may change)
    shared: bool = False  # it reads a customer-scope slot, which other interactions change
    watch: tuple[int, ...] = ()  # those customer-scope slots, ascending: re-evaluated when one changed since the interaction's last step


class Window(NamedTuple):
    """A window a step reads: its slot and its length in microseconds."""

    slot: int
    span: int


class PlannedOp(NamedTuple):
    """An operator an event of one type may update: its slot and the operator."""

    slot: int
    op: Op


@attrs.frozen(slots=True)
class TypePlan:
    """What an event of one type touches: the evaluator's dispatch table (§6)."""

    is_action: bool
    on_rules: tuple[OnRule, ...]
    ops: tuple[PlannedOp, ...]  # operators whose pattern or since-pattern has this type
    windows: tuple[Window, ...]  # every window the step reads outside clock closures: expired first
    step5: tuple[OnRule | WhileRule, ...]  # on rules of this type and the while rules whose inputs it changes, source order
    judges: tuple[WhileRule, ...]  # while rules that permit or forbid this action
    step5_full: tuple[OnRule | WhileRule, ...] = ()  # step5 and the other timed while rules, once one of them may have changed
    guarded: frozenset[int] = frozenset()  # positions of those other timed rules: re-evaluated only when their instant has come
    # positions of the shared while rules (in step5) whose inputs this type does not change: re-evaluated when another event of
    # the customer changed a slot of their ``watch`` since this interaction's last step (CustomerState.stamps), or their instant came
    watched: frozenset[int] = frozenset()
    customer_touched: tuple[int, ...] = ()  # the customer-scope slots an event of this type may update (its step stamps them)


class GroupEntry(NamedTuple):
    """A while rule in a run the generated code evaluates by a loop: its position, and whether it is guarded."""

    position: int
    guarded: bool
    watch: tuple[int, ...] = ()  # a watched rule's customer slots (TypePlan.watched), else ()


@attrs.frozen(slots=True, eq=False)
class Lowered:
    """What lowering decided that codegen prints alike: each let's expression and memo index, each operator's slot."""

    lets: Mapping[str, ast.Expr]
    memo_index: Mapping[str, int]  # the memoised lets: their index in a memo (the others are inlined)
    slots: Mapping[tuple[Any, ...], int]  # an operator's key (operators.py) -> its slot
    rules: tuple[ast.Rule, ...]


@attrs.frozen(slots=True, eq=False)
class GeneratedCode:
    """The step functions as Python (codegen.py): compiled, not yet run.

    The runtime runs ``code`` in a namespace of ``consts`` and of the helpers named in
    ``helpers`` (runtime/steps.py gives them), then builds each group of ``groups`` from
    the functions it defined; the module's ``FEEDERS`` maps each event type to its step function.
    """

    source: str
    filename: str
    code: CodeType
    consts: Mapping[str, Any]
    groups: Mapping[str, tuple[GroupEntry, ...]]
    helpers: frozenset[str]


class Permissions(NamedTuple):
    """§6 step 6 for a set of active while rules."""

    permitted: tuple[str, ...]
    forbidden: tuple[str, ...]
    active: tuple[str, ...]  # the active rules' names


#: A step function of a back end: ``step(interaction, event) -> Decision`` (typed in runtime/backend.py).
Step = Callable[..., Any]


@attrs.frozen(slots=True, eq=False)
class CompiledPolicy:
    """Everything the evaluator needs, immutable and safe to share between threads (its caches only grow)."""

    checked: CheckedPolicy
    name: str
    version: str | None
    sha256: str
    vocabulary: dict[str, EventType]
    actions: tuple[str, ...]  # sorted
    ops: tuple[Op, ...]
    ops_by_type: dict[str, tuple[int, ...]]  # event type -> ops whose pattern or since-pattern has that type
    while_rules: tuple[WhileRule, ...]
    on_rules_by_type: dict[str, tuple[OnRule, ...]]
    requires: tuple[RequireSpec, ...]
    rule_order: tuple[str, ...]  # every rule name in source order
    severity_of: dict[str, str]  # rule -> its severity (medium unless written)
    because_of: dict[str, str | None]
    default_forbid: dict[str, str]  # action -> severity of its default
    lets: dict[str, Fn]
    compile_expr: Callable[[ast.Expr, EventType | None], Fn]
    plans: dict[str, TypePlan] = attrs.field(factory=dict)
    code: GeneratedCode | None = None  # the generated step functions (codegen.py)
    backend: str | None = None  # the back end its interactions run on (runtime/backend.py); None: ESCALATION_BACKEND, else "generated"
    steps: dict[str, Mapping[str, Step]] = attrs.field(factory=dict)  # per back end name, its step functions (filled by the runtime)
    permission_cache: dict[tuple[int, ...], Permissions] = attrs.field(factory=dict)
    step_rules_cache: dict[str, tuple[OnRule | WhileRule, ...]] = attrs.field(factory=dict)
    state_template: tuple[Any, ...] = ()
    window_slots: tuple[int, ...] = ()
    timers: int = 0  # how many while rules are timed (the length of Interaction.wake)
    reads_customer_history: bool = False  # `across contacts` appears outside a claim (language.md §9)
    calendar: Calendar = DEFAULT_CALENDAR  # the calendar of `within N working days` (language.md §10)
    customer_slots: tuple[int, ...] = ()  # the slots of scope CUSTOMER, ascending

    @property
    def generated(self) -> str:
        """The Python source of the generated step functions (`escalation compile --show`)."""
        return self.code.source if self.code is not None else ""

    def initial_state(self) -> list[Any]:
        """A new conversation's operator slots (windows get their own deques)."""
        state = list(self.state_template)
        for i in self.window_slots:
            state[i] = deque()
        return state

    def initial_customer_state(self) -> list[Any]:
        """A new customer's slots: the full list of slots, of which only :attr:`customer_slots` are read."""
        state = list(self.state_template)
        for i in self.customer_slots:
            if i in self.window_slots:
                state[i] = deque()
        return state

    def step_rules(self, etype: str) -> tuple[OnRule | WhileRule, ...]:
        """§6 step 5 at a first event: the on rules of ``etype`` and every while rule, in source order."""
        rules = self.step_rules_cache.get(etype)
        if rules is None:
            rules = tuple(sorted([*self.on_rules_by_type.get(etype, ()), *self.while_rules], key=lambda r: r.index))
            self.step_rules_cache[etype] = rules
        return rules

    def permissions(self, active: tuple[int, ...]) -> Permissions:
        """(permitted, forbidden, active rule names) for the while rules at indexes ``active`` (§6 step 6)."""
        cached = self.permission_cache.get(active)
        if cached is not None:
            return cached
        forbidden: set[str] = set()
        permitted: set[str] = set()
        for i in active:
            rule = self.while_rules[i]
            forbidden |= rule.forbids
            permitted |= rule.permits
        allowed = tuple(a for a in self.actions if a not in forbidden and (a in permitted or a not in self.default_forbid))
        denied = tuple(a for a in self.actions if a not in allowed)
        result = Permissions(allowed, denied, tuple(self.while_rules[i].name for i in active))
        if len(self.permission_cache) < 65536:
            self.permission_cache[active] = result
        return result
