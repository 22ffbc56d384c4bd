"""The serial replay: every line of the inputs through one :class:`~escalation.replay.core.Replayer`, in order."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from ..audit import header_record
from ..compile import CompiledPolicy
from ..runtime import Line
from ..streams import Input
from .core import Replayer, input_lines, records_of


def replay_records(
    policy: CompiledPolicy,
    inputs: list[Input],
    as_of: int | None = None,
    strict: bool = False,
    progress: Callable[[int], None] | None = None,
    replayer: Replayer | None = None,
    idle_horizon: int | None = None,
) -> Iterator[dict[str, Any]]:
    """Every audit record of a replay, in order: header, one per input record, closes, summary.

    ``progress`` is called with the bytes of each line read (its LF included).
    """
    r = replayer or Replayer(policy, as_of, strict, idle_horizon)
    lines = input_lines(inputs, r.limits)
    if progress is not None:
        lines = _reporting(lines, progress)
    yield from records_of(r, header_record(policy, inputs, as_of, r.idle_horizon), lines)


def _reporting(lines: Iterator[Line], progress: Callable[[int], None]) -> Iterator[Line]:
    for line in lines:
        yield line
        progress(len(line.data) + 1)
