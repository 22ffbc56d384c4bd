"""Replays through the library: :class:`ReplayOptions` (what `escalation replay` takes), serial, with processes, or on Dask."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import IO, TYPE_CHECKING, Any, Protocol

import attrs

from ..lang import DEFAULT_LIMITS, Limits, parse_time
from ..replay import Input, Replayer, discard_inputs, open_inputs, replay_parallel, replay_records, write_log
from ..replay import usable as can_fork
from .policy import Policy

if TYPE_CHECKING:  # the Dask driver is an optional extra: imported only when a distributed replay runs
    from ..replay.dask import Manifest

__all__ = ["ReplayOptions", "ReplayTotals", "replay", "replay_distributed", "replay_inputs", "uses_processes", "write_replay"]


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


def replay(
    policy: Policy, paths: list[str], as_of: str | None = None, *, options: ReplayOptions | None = None
) -> Iterator[dict[str, Any]]:
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
    policy: Policy,
    inputs: list[Input],
    out: IO[bytes],
    options: ReplayOptions = ReplayOptions(),
    progress: Callable[[int], None] | None = None,
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


def replay_distributed(
    policy_path: str, shards: list[str], out_dir: str, options: ReplayOptions = ReplayOptions(), names: list[str] | None = None
) -> Manifest:
    """Replay ``shards`` on Dask into a partitioned audit at ``out_dir`` (docs/scaling.md); needs ``escalation[dask]``.

    Takes ``as_of``, ``scheduler`` (default ``local``) and ``partitions`` from the options;
    ``names`` are the inputs' names for the header (default: ``shards``).
    """
    if options.strict or options.jobs > 1 or options.idle_horizon is not None or options.limits != DEFAULT_LIMITS:
        raise ValueError("a distributed replay does not take strict, jobs, idle_horizon or limits")
    from ..replay import dask  # lazily: the distributed driver belongs to the optional Dask extra

    scheduler = options.scheduler if options.scheduler is not None else "local"
    return dask.replay_distributed(
        policy_path, shards, out_dir, scheduler=scheduler, as_of=options.as_of, partitions=options.partitions, names=names
    )
