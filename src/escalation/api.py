"""The embedding API (interfaces.md §4): load a policy once, start sessions, feed events, snapshot and resume; replay.

Words, as everywhere in the code: a *conversation* is the id an event names (its
``conversation`` key); an *interaction* is the state the engine keeps for one
conversation (:class:`~escalation.runtime.Interaction`); a :class:`Session` is the
library's thread-safe handle on one interaction.

Replays take their options as one :class:`ReplayOptions`, which the command line's
``replay`` and ``verify`` build from their flags.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import IO, TYPE_CHECKING, Any, Protocol

import attrs

from .audit import obligation_json
from .compile import CompiledPolicy
from .lang import DEFAULT_LIMITS, Limits, parse_time
from .load import load_compiled
from .replay import Input, Replayer, discard_inputs, open_inputs, replay_parallel, replay_records, write_log
from .replay import usable as can_fork
from .runtime import Decision, Event, Interaction, admit_record, check_order

if TYPE_CHECKING:  # the Dask driver is an optional extra: imported only when a distributed replay runs
    from .replay.dask import Manifest

__all__ = ["Policy", "ReplayOptions", "ReplayTotals", "Session", "load", "replay", "replay_distributed", "replay_inputs", "uses_processes", "write_replay"]


class Session:
    """One interaction (the state of one conversation) under a policy. Feed it that conversation's events in time order.

    Each event goes through the one admission path (:mod:`escalation.runtime.admit`):
    it is bound to this conversation and validated, then checked against the time of
    the event applied before it. A session may be shared between threads: a lock
    serialises :meth:`feed`, :meth:`permitted`, :attr:`obligations` and :meth:`snapshot`,
    so each event is checked against the time of the event applied just before it and
    applied whole before the next one starts, and a snapshot or a query never sees half
    an event. Events fed from several threads at once are applied in the order the lock
    admits them (one whose time is earlier than the previous one's is rejected, as always).
    """

    __slots__ = ("_inter", "_lock")

    def __init__(self, inter: Interaction) -> None:
        self._inter = inter
        self._lock = threading.Lock()

    @property
    def conversation(self) -> str:
        """The conversation id this session's events belong to."""
        return self._inter.conversation

    def feed(self, event: dict[str, Any] | Event) -> Decision:
        """Apply one event (a dict as in an event stream; `conversation` may be left out); EventError leaves the state as it was."""
        inter = self._inter
        if not isinstance(event, Event):  # binding and validation read only the event and the (immutable) policy
            event = admit_record(event, inter.policy.vocabulary, inter.conversation)
        lock = self._lock
        lock.acquire()  # acquire/release rather than `with`: a third of the cost on CPython 3.11
        try:
            check_order(event, inter.last_time)
            return inter.feed(event)
        finally:
            lock.release()

    def permitted(self, action: str, at: str | None = None) -> bool:
        """Whether ``action`` is permitted now (or at the later time ``at``, as §6 step 2 would judge it)."""
        now = parse_time(at) if at is not None else None
        with self._lock:
            return action in self._inter.permissions(now)[0]

    @property
    def obligations(self) -> list[dict[str, Any]]:
        """The pending obligations, as the audit log writes them."""
        with self._lock:
            return [obligation_json(ob) for ob in self._inter.pending]

    def snapshot(self) -> dict[str, Any]:
        """The interaction's state as JSON-serialisable data; :meth:`Policy.resume` takes it back."""
        with self._lock:
            return self._inter.snapshot()


class Policy:
    """A loaded, checked and compiled policy: immutable, safe to share between threads."""

    __slots__ = ("compiled",)

    def __init__(self, compiled: CompiledPolicy) -> None:
        self.compiled = compiled

    @property
    def name(self) -> str:
        return self.compiled.name

    @property
    def sha256(self) -> str:
        return self.compiled.sha256

    def start(self, conversation: str) -> Session:
        """A new session for ``conversation``, before its first event."""
        return Session(Interaction(self.compiled, conversation))

    def resume(self, snapshot: Any) -> Session:
        """A session from :meth:`Session.snapshot`'s data; raises SnapshotError for anything an interaction could not have written."""
        return Session(Interaction.resume(self.compiled, snapshot))


def load(path: str) -> Policy:
    """Read, check and compile a policy file; raises PolicyError listing every diagnostic."""
    return Policy(load_compiled(path))


def _micros(value: str | int | None) -> int | None:
    """A time as microseconds since the epoch: an RFC 3339 string is parsed (TimeError if it is not one)."""
    return parse_time(value) if isinstance(value, str) else value


def _positive(instance: Any, attribute: attrs.Attribute[Any], value: int | None) -> None:
    if value is not None and value < 1:
        raise ValueError(f"{attribute.name} must be at least 1, not {value}")


@attrs.frozen(slots=True)
class ReplayOptions:
    """What a replay is asked to do, as `escalation replay` takes it (interfaces.md §3); times and durations in microseconds.

    ``as_of``: close the replay at this time (an RFC 3339 string is parsed); ``strict``:
    stop at the first rejected record (:class:`~escalation.replay.StrictStop`); ``jobs``:
    processes for :func:`write_replay` (the log is byte for byte a serial replay's; one
    process with ``strict`` or ``idle_horizon``, or where processes cannot be forked);
    ``idle_horizon``: close and free conversations idle that long (recorded in the
    header); ``limits``: the bounds on events. ``scheduler`` and ``partitions`` are for
    :func:`replay_distributed` only.
    """

    as_of: int | None = attrs.field(default=None, converter=_micros)
    strict: bool = False
    jobs: int = attrs.field(default=1, validator=_positive)
    idle_horizon: int | None = attrs.field(default=None, validator=_positive)
    limits: Limits = DEFAULT_LIMITS
    scheduler: str | None = None
    partitions: int | None = attrs.field(default=None, validator=_positive)

    @property
    def parallel(self) -> bool:
        """Whether :func:`write_replay` may use ``jobs`` processes (not with ``strict`` or ``idle_horizon``)."""
        return self.jobs > 1 and not self.strict and self.idle_horizon is None


class ReplayTotals(Protocol):
    """The totals of a finished replay, as the command line's summary reads them."""

    records: int
    events: int
    rejected: int
    conversations: int
    violations: int
    by_kind: dict[str, int]
    by_rule: dict[str, int]
    open_obligations: int


def _replayer(policy: Policy, options: ReplayOptions) -> Replayer:
    return Replayer(policy.compiled, options.as_of, options.strict, options.idle_horizon, options.limits)


def replay_inputs(
    policy: Policy, inputs: list[Input], options: ReplayOptions = ReplayOptions(), progress: Callable[[int], None] | None = None
) -> Iterator[dict[str, Any]]:
    """The audit records (without ``prev``/``hash``) of a serial replay of opened ``inputs``; ``progress`` gets each line's bytes."""
    replayer = _replayer(policy, options)
    yield from replay_records(policy.compiled, inputs, options.as_of, options.strict, progress, replayer)


def replay(policy: Policy, paths: list[str], as_of: str | None = None, *, options: ReplayOptions | None = None) -> Iterator[dict[str, Any]]:
    """The audit records of a replay of ``paths`` (without ``prev``/``hash``, which the writer adds), header first, summary last.

    ``as_of`` (RFC 3339) is short for ``options=ReplayOptions(as_of=...)``; give one or the other.
    """
    if options is None:
        options = ReplayOptions(as_of=as_of)
    elif as_of is not None:
        raise ValueError("give as_of in the options, not beside them")
    inputs = open_inputs(paths)
    try:
        yield from replay_inputs(policy, inputs, options)
    finally:
        discard_inputs(inputs)


def uses_processes(options: ReplayOptions) -> bool:
    """Whether :func:`write_replay` will run ``options.jobs`` processes: the options allow it and this platform can fork."""
    return options.parallel and can_fork()


def write_replay(
    policy: Policy, inputs: list[Input], out: IO[bytes], options: ReplayOptions = ReplayOptions(), progress: Callable[[int], None] | None = None
) -> ReplayTotals:
    """Write the hash-chained audit log of a replay of ``inputs`` to ``out`` (seekable with ``jobs``); returns its totals.

    With ``options.jobs`` processes when :attr:`ReplayOptions.parallel` allows and the
    platform can fork (``progress`` is then not called), else serially.
    """
    if uses_processes(options):
        return replay_parallel(policy.compiled, inputs, options.as_of, options.jobs, out, None, options.limits)
    replayer = _replayer(policy, options)
    write_log(replay_records(policy.compiled, inputs, options.as_of, options.strict, progress, replayer), out)
    return replayer.stats


def replay_distributed(policy_path: str, shards: list[str], out_dir: str, options: ReplayOptions = ReplayOptions(), names: list[str] | None = None) -> Manifest:
    """Replay ``shards`` on Dask into a partitioned audit at ``out_dir`` (docs/scaling.md); needs ``escalation[dask]``.

    Takes ``as_of``, ``scheduler`` (default ``local``) and ``partitions`` from the options;
    ``names`` are the inputs' names for the header (default: ``shards``).
    """
    if options.strict or options.jobs > 1 or options.idle_horizon is not None or options.limits != DEFAULT_LIMITS:
        raise ValueError("a distributed replay does not take strict, jobs, idle_horizon or limits")
    from .replay import dask  # lazily: the distributed driver belongs to the optional Dask extra

    scheduler = options.scheduler if options.scheduler is not None else "local"
    return dask.replay_distributed(policy_path, shards, out_dir, scheduler=scheduler, as_of=options.as_of, partitions=options.partitions, names=names)
