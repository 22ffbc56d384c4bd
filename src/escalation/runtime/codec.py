"""Checking a snapshot before it is resumed: every field against the compiled policy.

A snapshot (:meth:`Interaction.snapshot`) leaves the process: it is stored, sent,
perhaps edited by hand, and comes back as untrusted data. :func:`check_snapshot`
accepts exactly what an interaction under the same policy could have written, and
refuses anything else with a :class:`SnapshotError` whose message is one sentence
naming the field. It only reads the snapshot; the caller builds a fresh interaction
from what it returns, so a refused snapshot changes nothing anywhere.

What holds for a snapshot an interaction writes, and is therefore required:

- the keys are exactly :data:`KEYS`; ``format`` and ``policy_sha256`` are this
  format and this policy's hash; ``conversation`` is a string;
- ``last_time`` (the latest event's time) is null before any event, else integer
  microseconds within the times an event may have (events.MIN_TIME..MAX_TIME);
- ``state`` has one slot per temporal operator, of the kind its operator's
  ``initial()`` gives (each operator's class in compile/operators.py decodes its own): a count is a non-negative integer; a window a list of
  integer times in ascending order; a ``last`` is null or a value of the
  attribute's type; a ``time since`` is null or an integer time. No time is later
  than ``last_time``, and before any event every slot is at its initial value;
- ``pending`` lists ``[n, spec, created_at, due]`` rows: ``n`` a positive integer,
  strictly ascending (so unique) and below ``next_n``; ``spec`` an index into the
  policy's ``require`` effects (0..len-1, never negative); ``created_at`` a time no
  later than ``last_time``, not decreasing along the list; ``due`` exactly
  ``created_at`` plus the require's ``within`` (null when it has none) and not
  earlier than ``last_time`` (an event expires everything due before it);
- ``next_n`` is a positive integer, 1 before any event;
- ``customer`` is null (unbound) or the non-empty customer id it is bound to, only after an event; once bound,
  the slots of scope ``customer`` are at their initial values (the customer's snapshot holds them) and the
  activity of a while rule that reads them is taken from ``active`` (it cannot be recomputed without them);
- ``active`` names each ``while`` rule whose condition holds. A while rule is active
  after an event exactly when its condition holds on the state at that event's
  time (language.md §6; before the first event none is), so the flags are a
  function of ``state`` and ``last_time``: they are **recomputed** from them, never
  taken from the snapshot, and an ``active`` list that disagrees with them (a rule
  forced active or left out, an unknown name, a name twice) is refused.

The replay's spill (:meth:`Interaction.frozen` / :meth:`Interaction.thawed`, a :class:`Frozen`)
is written and read by the same process and is not checked here.
"""

from __future__ import annotations

import json
import reprlib
from collections import deque
from typing import Any, NamedTuple

import orjson

from ..compile import CompiledPolicy, Op, operator_of
from ..errors import SnapshotError
from ..lang import BOOL, DURATION, INT, STRING, US, EnumType, format_time
from ..syntax.unparse import format_expr
from .events import MAX_TIME, MIN_TIME

SNAPSHOT_FORMAT = "escalation-snapshot/1"

#: The keys of a snapshot, in the order :meth:`Interaction.snapshot` writes them.
KEYS = ("format", "policy_sha256", "conversation", "customer", "state", "active", "pending", "next_n", "last_time")

#: The format of a customer's snapshot (:meth:`CustomerState.snapshot`), and its keys in the order it writes them.
CUSTOMER_FORMAT = "escalation-customer/1"
CUSTOMER_KEYS = ("format", "policy_sha256", "customer", "state", "latest")

#: The largest count, obligation number or ``next_n`` a snapshot may hold (a signed 64-bit integer).
MAX_COUNT = 2**63 - 1

_repr = reprlib.Repr()
_repr.maxstring = 40
_repr.maxother = 40
_repr.maxlist = _repr.maxtuple = _repr.maxdict = 4
_repr.maxlevel = 2


class PendingRow(NamedTuple):
    """A pending obligation as plain values: what snapshots and the spill keep of it."""

    n: int
    spec: int  # its index in CompiledPolicy.requires
    created_at: int
    due: int | None


class Frozen(NamedTuple):
    """An interaction's state as plain values for this process (:meth:`Interaction.frozen`): not a format."""

    state: list[Any]
    active: tuple[int, ...]
    flags: list[bool]
    next_n: int
    last_time: int | None
    pending: list[PendingRow]
    customer: str | None = None  # the bound customer (language.md §9)


class FrozenCustomer(NamedTuple):
    """A customer's state as plain values for this process (:meth:`CustomerState.frozen`): not a format."""

    state: list[Any]  # the full list of slots; only the policy's customer slots are read
    latest: int | None


class CheckedCustomer(NamedTuple):
    """What a valid customer snapshot holds, in the evaluator's form."""

    customer: str
    state: list[Any]
    latest: int | None


class Checked(NamedTuple):
    """What a valid snapshot holds, in the evaluator's form (windows as fresh deques)."""

    conversation: str
    state: list[Any]
    active: tuple[int, ...]
    flags: list[bool]
    pending: list[PendingRow]
    next_n: int
    last_time: int | None
    customer: str | None


def encode_state(policy: CompiledPolicy, state: list[Any]) -> list[Any]:
    """The operator slots as a snapshot holds them (JSON values), each encoded by its operator."""
    return [operator_of(op).encode(v) for op, v in zip(policy.ops, state, strict=True)]


def _show(value: Any) -> str:
    """A short, safe rendering of any value for a message (a huge integer is described, not printed)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 128:
        return f"an integer of {len(str(abs(value))) if value.bit_length() < 10_000 else 'thousands of'} digits"
    if isinstance(value, float):
        return f"the number {value!r}"
    try:
        text = _repr.repr(value)
    except Exception:  # a value handed in by a library caller whose repr fails
        text = f"a {type(value).__name__}"
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _time(value: Any, where: str, latest: int | None) -> int:
    """An integer time in microseconds, within the event times and not after ``latest`` (when given)."""
    if not _is_int(value):
        raise SnapshotError(f"the snapshot's {where} must be an integer time in microseconds, not {_show(value)}")
    if not MIN_TIME <= value <= MAX_TIME:
        raise SnapshotError(f"the snapshot's {where} is {_show(value)}, outside the times an event may have")
    if latest is not None and value > latest:
        raise SnapshotError(f"the snapshot's {where} is {_show(value)}, later than its latest event (`last_time` {latest}, {format_time(latest)})")
    return int(value)


def _count(value: Any, where: str, least: int = 0) -> int:
    if not _is_int(value) or not least <= value <= MAX_COUNT:
        what = "a non-negative integer" if least == 0 else f"an integer of at least {least}"
        raise SnapshotError(f"the snapshot's {where} must be {what} (at most {MAX_COUNT}), not {_show(value)}")
    return int(value)


def _describe(op: Op) -> str:
    if op.source is not None:
        return f"`{format_expr(op.source)}`"
    return f"a {op.kind} operator"  # pragma: no cover - every compiled operator has its source


def _last_value(policy: CompiledPolicy, op: Op, value: Any, where: str) -> Any:
    """A `last` slot: null (never seen) or a value of the attribute's type, as an event would give it."""
    if value is None:
        return None
    field = policy.vocabulary[op.pattern.event].field(op.attr)
    assert field is not None
    t = field.type
    if isinstance(t, EnumType):
        if isinstance(value, str) and value in t.member_set:
            return value
        expected = f"null or one of {t.listed()}"
    elif t == INT:
        if _is_int(value):
            return int(value)
        expected = "null or an integer"
    elif t == BOOL:
        if isinstance(value, bool):
            return value
        expected = "null or true or false"
    elif t == STRING:
        if isinstance(value, str):
            return str(value)
        expected = "null or a string"
    elif t == DURATION:
        if _is_int(value) and value >= 0:
            return int(value)
        expected = "null or a non-negative integer number of microseconds"
    else:  # pragma: no cover - the vocabulary's types are closed
        raise AssertionError(t)
    raise SnapshotError(f"the snapshot's {where} must be {expected}, not {_show(value)}")


class _Slots:
    """The codec's checks, as the operators' ``decode`` reads them (compile/operators.py's SlotReader)."""

    def __init__(self, policy: CompiledPolicy, last_time: int | None) -> None:
        self.policy = policy
        self.last_time = last_time

    def where(self, slot: int, entry: int | None = None) -> str:
        index = f"[{slot}]" if entry is None else f"[{slot}][{entry}]"
        return f"`state{index}` ({_describe(self.policy.ops[slot])})"

    def show(self, value: Any) -> str:
        return _show(value)

    def count(self, value: Any, where: str) -> int:
        return _count(value, where)

    def time(self, value: Any, where: str) -> int:
        return _time(value, where, self.last_time)

    def attribute(self, op: Op, value: Any, where: str) -> Any:
        return _last_value(self.policy, op, value, where)


def _slot(slots: _Slots, i: int, op: Op, value: Any) -> Any:
    """One operator slot, decoded by its operator; before any event it must be the operator's initial value."""
    operator = operator_of(op)
    result = operator.decode(op, value, i, slots)
    if slots.last_time is None and result != operator.initial():
        raise SnapshotError(
            f"the snapshot's {slots.where(i)} is {_show(value)}, but it records no event yet (`last_time` is null), so it must be {operator.initial_text}"
        )
    return result


def _pending(policy: CompiledPolicy, rows: Any, last_time: int | None) -> list[PendingRow]:
    if not isinstance(rows, list | tuple):
        raise SnapshotError(f"the snapshot's `pending` must be a list of obligations, not {_show(rows)}")
    if rows and last_time is None:
        raise SnapshotError("the snapshot's `pending` holds obligations, but it records no event yet (`last_time` is null)")
    requires = policy.requires
    out: list[PendingRow] = []
    for j, row in enumerate(rows):
        where = f"`pending[{j}]`"
        if not isinstance(row, list | tuple) or len(row) != 4:
            raise SnapshotError(f"the snapshot's {where} must be a list [n, spec, created_at, due], not {_show(row)}")
        n = _count(row[0], f"{where} number n", least=1)
        if out and n <= out[-1].n:
            raise SnapshotError(f"the snapshot's {where} number n is {n}, not greater than the obligation before it (numbers are unique and ascending)")
        spec_index = row[1]
        if not _is_int(spec_index) or not 0 <= spec_index < len(requires):
            raise SnapshotError(f"the snapshot's {where} spec must be an index from 0 to {len(requires) - 1} into the policy's `require` effects, not {_show(spec_index)}")
        spec = requires[spec_index]
        created = _time(row[2], f"{where} created_at", last_time)
        if out and created < out[-1].created_at:
            raise SnapshotError(f"the snapshot's {where} created_at is earlier than that of the obligation before it, which was created first")
        due = row[3]
        if spec.working_days is not None:
            expected = policy.calendar.due(created, spec.working_days)
            if not _is_int(due) or due != expected:
                raise SnapshotError(
                    f"the snapshot's {where} due must be rule `{spec.rule}`'s {spec.working_days} working days after created_at in the policy's calendar, {expected}, not {_show(due)}"
                )
            assert last_time is not None
            if due < last_time:
                raise SnapshotError(f"the snapshot's {where} due {due} is earlier than its latest event (`last_time` {last_time}), which would have expired it")
        elif spec.within is None:
            if due is not None:
                raise SnapshotError(f"the snapshot's {where} due must be null (rule `{spec.rule}`'s require has no `within`), not {_show(due)}")
        else:
            if not _is_int(due) or due != created + spec.within:
                raise SnapshotError(
                    f"the snapshot's {where} due must be created_at plus rule `{spec.rule}`'s `within` ({spec.within // US}s), {created + spec.within}, not {_show(due)}"
                )
            assert last_time is not None
            if due < last_time:
                raise SnapshotError(f"the snapshot's {where} due {due} is earlier than its latest event (`last_time` {last_time}), which would have expired it")
        out.append(PendingRow(n, int(spec_index), created, None if due is None else int(due)))
    return out


def _flags(policy: CompiledPolicy, state: list[Any], last_time: int | None) -> list[bool]:
    """The while rules active after the latest event: those whose condition holds on the state at its time (§6)."""
    if last_time is None:  # before the first event every while rule counts as inactive
        return [False] * len(policy.while_rules)
    try:
        return [bool(rule.cond(state, None, last_time)) for rule in policy.while_rules]
    except (TypeError, ValueError, ArithmeticError, KeyError, IndexError) as err:  # pragma: no cover - the slots are checked above
        raise SnapshotError(f"the snapshot's `state` cannot be evaluated by this policy's rules ({type(err).__name__})") from None


def _active(policy: CompiledPolicy, names: Any, flags: list[bool], last_time: int | None) -> tuple[int, ...]:
    if not isinstance(names, list | tuple):
        raise SnapshotError(f"the snapshot's `active` must be a list of while-rule names, not {_show(names)}")
    positions = {r.name: r.position for r in policy.while_rules}
    seen: set[int] = set()
    for j, name in enumerate(names):
        if not isinstance(name, str) or name not in positions:
            raise SnapshotError(f"the snapshot's `active[{j}]` is {_show(name)}, which is not a while rule of this policy")
        k = positions[name]
        if k in seen:
            raise SnapshotError(f"the snapshot's `active` names rule `{name}` twice")
        if not flags[k]:
            if last_time is None:
                raise SnapshotError(f"the snapshot's `active` says rule `{name}` is active, but it records no event yet (`last_time` is null), and before the first event no while rule is")
            raise SnapshotError(f"the snapshot's `active` says rule `{name}` is active, but its condition does not hold on the snapshot's state")
        seen.add(k)
    for k, on in enumerate(flags):
        if on and k not in seen:
            raise SnapshotError(f"the snapshot's `active` leaves out rule `{policy.while_rules[k].name}`, whose condition holds on the snapshot's state")
    return tuple(k for k, on in enumerate(flags) if on)


def _check_envelope(policy: CompiledPolicy, snap: Any, fmt_name: str, keys: Any, what: str, replay: str) -> None:
    """What every snapshot shares: a JSON object of format ``fmt_name``, taken under ``policy``, with exactly ``keys``."""
    if not isinstance(snap, dict):
        raise SnapshotError(f"this is not an {fmt_name} snapshot (a {what} is a JSON object, not {_show(snap)})")
    fmt = snap.get("format")
    if not isinstance(fmt, str) or fmt != fmt_name:
        raise SnapshotError(f"this is not an {fmt_name} snapshot (its `format` is {_show(fmt)})")
    sha = snap.get("policy_sha256")
    if not isinstance(sha, str) or sha != policy.sha256:
        raise SnapshotError(f"the {what} was taken under another policy (its sha256 differs); replay {replay} instead")
    missing = [k for k in keys if k not in snap]
    if missing:
        raise SnapshotError(f"the {what} has no `{missing[0]}`")
    extra = sorted((k for k in snap if k not in keys), key=repr)
    if extra:
        raise SnapshotError(f"the {what} holds the unknown key {_show(extra[0])}")


def check_snapshot(policy: CompiledPolicy, snap: Any) -> Checked:
    """Every field of ``snap`` checked against ``policy``; SnapshotError (one sentence naming the field) when one does not fit."""
    _check_envelope(policy, snap, SNAPSHOT_FORMAT, KEYS, "snapshot", "the interaction")

    conversation = snap["conversation"]
    if not isinstance(conversation, str):
        raise SnapshotError(f"the snapshot's `conversation` must be a string, not {_show(conversation)}")
    customer = snap["customer"]
    if customer is not None and (not isinstance(customer, str) or not customer):
        raise SnapshotError(f"the snapshot's `customer` must be null (unbound) or a non-empty string, not {_show(customer)}")
    raw_last = snap["last_time"]
    last_time = None if raw_last is None else _time(raw_last, "`last_time`", None)
    if customer is not None and last_time is None:
        raise SnapshotError("the snapshot's `customer` names a binding, but it records no event yet (`last_time` is null), and an interaction binds at an event")

    raw_state = snap["state"]
    if not isinstance(raw_state, list | tuple):
        raise SnapshotError(f"the snapshot's `state` must be a list, not {_show(raw_state)}")
    if len(raw_state) != len(policy.ops):
        raise SnapshotError(f"the snapshot's `state` has {len(raw_state)} slots, and this policy has {len(policy.ops)} temporal operators")
    slots = _Slots(policy, last_time)
    state = [_slot(slots, i, op, v) for i, (op, v) in enumerate(zip(policy.ops, raw_state, strict=True))]

    pending = _pending(policy, snap["pending"], last_time)
    next_n = _count(snap["next_n"], "`next_n`", least=1)
    if last_time is None and next_n != 1:
        raise SnapshotError(f"the snapshot's `next_n` is {next_n}, but it records no event yet (`last_time` is null), so it must be 1")
    if pending and next_n <= pending[-1].n:
        raise SnapshotError(f"the snapshot's `next_n` is {next_n}, not greater than the number of its last pending obligation ({pending[-1].n})")

    if customer is not None:  # bound: the customer's slots are saved with the customer, not here
        for i in policy.customer_slots:
            if state[i] != operator_of(policy.ops[i]).initial():
                raise SnapshotError(
                    f"the snapshot's {slots.where(i)} must be {operator_of(policy.ops[i]).initial_text}: the interaction is bound to a customer, whose state holds it"
                )
    flags = _flags(policy, state, last_time)
    if customer is not None:
        # a rule reading the customer's slots: its activity after the latest event is the snapshot's word (its inputs
        # are in the customer's snapshot, which may have moved on since); the others are recomputed as always
        names = snap["active"]
        listed = set(names) if isinstance(names, list | tuple) and all(isinstance(n, str) for n in names) else set()
        for rule in policy.while_rules:
            if rule.shared:
                flags[rule.position] = rule.name in listed
    active = _active(policy, snap["active"], flags, last_time)
    return Checked(conversation, state, active, flags, pending, next_n, last_time, customer)


def encode_customer(policy: CompiledPolicy, state: list[Any]) -> list[Any]:
    """A customer's slots as its snapshot holds them: one JSON value per customer slot, in slot order."""
    return [operator_of(policy.ops[i]).encode(state[i]) for i in policy.customer_slots]


def check_customer(policy: CompiledPolicy, snap: Any) -> CheckedCustomer:
    """Every field of a customer snapshot checked against ``policy``; SnapshotError (one sentence naming the field) otherwise."""
    _check_envelope(policy, snap, CUSTOMER_FORMAT, CUSTOMER_KEYS, "customer snapshot", "the customer's events")
    customer = snap["customer"]
    if not isinstance(customer, str) or not customer:
        raise SnapshotError(f"the customer snapshot's `customer` must be a non-empty string, not {_show(customer)}")
    raw_latest = snap["latest"]
    latest = None if raw_latest is None else _time(raw_latest, "`latest`", None)
    raw_state = snap["state"]
    if not isinstance(raw_state, list | tuple):
        raise SnapshotError(f"the customer snapshot's `state` must be a list, not {_show(raw_state)}")
    slots = policy.customer_slots
    if len(raw_state) != len(slots):
        raise SnapshotError(f"the customer snapshot's `state` has {len(raw_state)} slots, and this policy has {len(slots)} operators across contacts")
    reader = _Slots(policy, latest)
    state = policy.initial_customer_state()
    for i, value in zip(slots, raw_state, strict=True):
        state[i] = _slot(reader, i, policy.ops[i], value)
    return CheckedCustomer(customer, state, latest)


# ------------------------------------------------------------------ the compact spill form



def pack_state(frozen: Frozen) -> bytes:
    """:meth:`Interaction.frozen` (any tuple-like of its fields, in order) as compact bytes for a state store; no pickle.

    JSON of plain lists, integers, strings, booleans and nulls: the operator slots (each
    window, a deque, as a list), the positions of the windows, then the other fields as
    they are (tuples become lists). orjson writes it; when it cannot (an integer beyond 64
    bits, which an `int` attribute may hold), the stdlib writes it, marked by a leading
    ``J`` (orjson would read such an integer back as a float). :func:`unpack_state` reads
    it back, in any process of the same engine. It is not a snapshot (nothing is checked
    against a policy): :meth:`Interaction.snapshot` is the format for that.
    """
    state, rest = frozen.state, list(frozen[1:])
    windows = [i for i, v in enumerate(state) if type(v) is deque]
    doc = [[list(v) if type(v) is deque else v for v in state] if windows else state, windows, *rest]
    try:
        return orjson.dumps(doc)
    except (orjson.JSONEncodeError, TypeError):
        pass
    return b"J" + json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def unpack_state(data: bytes) -> Frozen:
    """The fields :func:`pack_state` packed, in order, in the evaluator's form (windows as deques, ``active`` and
    each ``pending`` row as tuples): what :meth:`Interaction.thawed` takes."""
    if data[:1] == b"J":
        doc = json.loads(data[1:].decode("utf-8"))
    else:
        doc = orjson.loads(data)
    state, windows, active, flags, next_n, last_time, pending, *rest = doc
    for i in windows:
        state[i] = deque(state[i])
    return Frozen(state, tuple(active), flags, next_n, last_time, [PendingRow(*row) for row in pending], rest[0] if rest else None)


def unpack_customer(data: bytes) -> FrozenCustomer:
    """A :class:`FrozenCustomer` that :func:`pack_state` packed (it packs any frozen form whose first field is the slots)."""
    if data[:1] == b"J":
        doc = json.loads(data[1:].decode("utf-8"))
    else:
        doc = orjson.loads(data)
    state, windows, latest = doc
    for i in windows:
        state[i] = deque(state[i])
    return FrozenCustomer(state, latest)
