"""What several verbs share: the policy files of the arguments, time and duration flags, notes on errors, the replay summary.

Errors are not handled here: a verb raises the library's
:class:`~escalation.errors.EscalationError` (or adds a note with :func:`noted`) and
:mod:`escalation.cli.app` turns it into one sentence and the exit code its class carries.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import TypeVar

import click

from ..api import ReplayTotals
from ..audit import MAX_IDLE_HORIZON_S
from ..lang import TimeError, format_time, parse_time

E = TypeVar("E", bound=BaseException)


def policy_files(paths: tuple[str, ...], with_tests: bool = False) -> list[str]:
    """Expand folders to the `.esc` policies inside them (and, ``with_tests``, their NAME.test.esc files)."""
    out: list[str] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            out.extend(str(f) for f in sorted(path.rglob("*.esc")) if with_tests or not f.name.endswith(".test.esc"))
        else:
            out.append(p)
    return out


def noted(err: E, note: str) -> E:
    """``err`` with ``note`` added (PEP 678): the command line writes it after the error's sentence, in parentheses."""
    if sys.version_info >= (3, 11):
        err.add_note(note)
    else:  # pragma: no cover - Python 3.10 has the attribute's protocol but not add_note
        err.__notes__ = [*getattr(err, "__notes__", []), note]
    return err


def parse_as_of(value: str | None) -> int | None:
    """`replay --as-of TIME`: microseconds, or a usage error naming the flag."""
    if value is None:
        return None
    try:
        us = parse_time(value)
        format_time(us)  # the close records write it: it must be within the years 0001-9999 in UTC
    except TimeError as err:
        raise click.BadParameter(str(err).replace("`time`", "the time"), param_hint="--as-of") from None
    except (OverflowError, ValueError):
        raise click.BadParameter(f"the time {value!r} is outside the years 0001-9999 in UTC, which an audit log can hold", param_hint="--as-of") from None
    return us


def parse_horizon(value: str | None) -> int | None:
    """`--idle-horizon DURATION` (30m, 2h, 7d): microseconds, or a usage error naming the flag."""
    if value is None:
        return None
    shown = repr(value) if len(value) <= 40 else repr(value[:40]) + "..."
    m = re.fullmatch(r"([0-9]+)([smhd])", value.strip())
    if m is None or not m.group(1).strip("0"):
        raise click.BadParameter(f"{shown} is not a positive duration such as 30m, 2h or 7d", param_hint="--idle-horizon")
    digits = m.group(1).lstrip("0")
    # more than 15 digits is more than the limit in any unit (and is never converted: Python refuses 4,300 digits)
    seconds = int(digits) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)] if len(digits) <= 15 else MAX_IDLE_HORIZON_S + 1
    if seconds > MAX_IDLE_HORIZON_S:  # longer than the span of the times a log can write: the header could not hold it
        raise click.BadParameter(
            f"{shown} is longer than the years 0001-9999 (at most {MAX_IDLE_HORIZON_S // 86400}d), more than any two times of a replay are apart",
            param_hint="--idle-horizon",
        )
    return seconds * 1_000_000


def summary_text(totals: ReplayTotals, out: str) -> str:
    """The short human summary of a replay that `replay` writes on standard error."""
    lines = [
        f"replayed {totals.records} records into {out}: {totals.events} events, {totals.rejected} rejected, {totals.conversations} conversations",
        f"violations: {totals.violations}"
        + (" (" + ", ".join(f"{k} {v}" for k, v in totals.by_kind.items() if v) + ")" if totals.violations else ""),
    ]
    if totals.by_rule:
        lines.append("by rule: " + ", ".join(f"{k} {v}" for k, v in sorted(totals.by_rule.items(), key=lambda kv: (-kv[1], kv[0]))))
    lines.append(f"open obligations: {totals.open_obligations}")
    return "\n".join(lines)
