"""`escalation replay POLICY EVENTS...`: the audit log of a replay, whole or not at all; or a partitioned audit on Dask.

The flags become one :class:`~escalation.api.ReplayOptions`; the library writes the log
(:func:`~escalation.api.write_replay`, :func:`~escalation.api.replay_distributed`).
This module adds what only a command does: where the log goes (a temporary file beside
``-o``, renamed at the end; or standard output once the log is complete), a progress
bar, the summary on standard error and the exit code.
"""

from __future__ import annotations

import os
import shutil
import stat
import sys
import tempfile
from pathlib import Path
from typing import NoReturn

import click

from ..api import Policy, ReplayOptions, load, replay_distributed, uses_processes, write_replay
from ..errors import EXIT_OK, EXIT_REJECTED, EXIT_VIOLATIONS, EscalationError
from ..replay import InputError, StrictStop, discard_inputs, open_inputs
from ..streams import OutputError, check_target, temp_beside
from .common import noted, parse_as_of, parse_horizon, summary_text

#: Inputs larger than this show a progress bar on a terminal (a serial replay only).
_PROGRESS_BYTES = 1 << 20
_NOT_WRITTEN = "no audit log was written"


@click.command()
@click.argument("policy")
@click.argument("events", nargs=-1, required=True)
@click.option("-o", "--output", help="Write the audit log here (whole or not at all); default: standard output")
@click.option("--as-of", "as_of", help="Close the replay at this RFC 3339 time: open obligations due before it become violations")
@click.option("--fail-on-violation", is_flag=True, help="Exit 3 when any violation was found")
@click.option("--strict", is_flag=True, help="Stop at the first rejected record, write no log, exit 4")
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True, help="Worker processes (the log is identical to a serial replay)")
@click.option(
    "--idle-horizon",
    "idle_horizon",
    help="Close and free a conversation after this long (e.g. 2h) without events, measured against the latest event time; "
    "changes the output (see docs/scaling.md) and is recorded in the header",
)
@click.option(
    "--dask",
    "dask_scheduler",
    metavar="SCHEDULER",
    help="Replay on Dask: `local` (a local cluster of 2 worker processes, `local:N` for N) or a scheduler address; "
    "writes a partitioned audit to --out-dir (needs escalation[dask]; see docs/scaling.md)",
)
@click.option("--out-dir", "out_dir", help="With --dask: the folder of the partitioned audit (parts and manifest.json), whole or not at all")
@click.option("--partitions", type=click.IntRange(min=1), help="With --dask: the number of partitions (default: one per 16 MiB of input)")
def replay(
    policy: str,
    events: tuple[str, ...],
    output: str | None,
    as_of: str | None,
    fail_on_violation: bool,
    strict: bool,
    jobs: int,
    idle_horizon: str | None,
    dask_scheduler: str | None,
    out_dir: str | None,
    partitions: int | None,
) -> None:
    """Replay EVENTS (JSONL files, `-` for standard input) against POLICY and write the audit log."""
    options = ReplayOptions(
        as_of=parse_as_of(as_of), strict=strict, jobs=jobs, idle_horizon=parse_horizon(idle_horizon), scheduler=dask_scheduler, partitions=partitions
    )
    if dask_scheduler is not None or out_dir is not None or partitions is not None:
        if dask_scheduler is None or out_dir is None:
            raise click.UsageError("--dask and --out-dir go together: a distributed replay writes a partitioned audit folder")
        if output is not None or strict or jobs > 1 or options.idle_horizon is not None:
            raise click.UsageError("--dask does not combine with -o, --strict, --jobs or --idle-horizon")
    loaded = load(policy)
    if dask_scheduler is not None and out_dir is not None:
        _replay_dask(policy, events, out_dir, options, fail_on_violation)
    if output is None and sys.stdout is None:
        raise EscalationError("standard output is closed: give -o FILE for the audit log")
    _replay_log(loaded, policy, events, output, options, fail_on_violation)


def _replay_log(loaded: Policy, policy: str, events: tuple[str, ...], output: str | None, options: ReplayOptions, fail_on_violation: bool) -> NoReturn:
    """The audit log to ``output`` (or standard output), whole or not at all; the summary; the exit code."""
    protected = _protected(policy, events)
    like = check_target(output, protected) if output is not None else None  # -o must be a new path or a regular file, not an input
    spool_dir = (os.path.dirname(output) or ".") if output is not None else None
    inputs = open_inputs(list(events), spool_dir)
    tmp: str | None = None
    try:
        folder = spool_dir or tempfile.gettempdir()
        try:
            tmp_fd, tmp = temp_beside(output, like) if output is not None else tempfile.mkstemp(prefix=".escalation-", suffix=".tmp")
        except OSError as err:
            raise OutputError(f"cannot create a temporary file in the folder {folder}: {err.strerror or err}") from None
        total = sum(i.size or 0 for i in inputs)
        with os.fdopen(tmp_fd, "wb", buffering=1 << 20) as fh:
            if not uses_processes(options) and sys.stderr is not None and sys.stderr.isatty() and total > _PROGRESS_BYTES:
                with click.progressbar(length=total, label="replaying", file=sys.stderr) as bar:
                    totals = write_replay(loaded, inputs, fh, options, bar.update)
            else:
                totals = write_replay(loaded, inputs, fh, options)
            fh.flush()
            os.fsync(fh.fileno())
        if output is not None:
            check_target(output, protected)  # again: something may have appeared at the path during the replay
            os.replace(tmp, output)
        else:
            with open(tmp, "rb") as src:
                shutil.copyfileobj(src, sys.stdout.buffer)
            sys.stdout.flush()
    except StrictStop as stop:
        raise noted(stop, "--strict: " + _NOT_WRITTEN) from None
    except EscalationError as err:
        raise noted(err, _NOT_WRITTEN) from None
    except OSError as err:  # a full disk, a failing device
        if isinstance(err, BrokenPipeError):  # `escalation replay ... | head`: the command group handles it
            raise
        where = f"{err.filename} " if err.filename else ""
        raise noted(EscalationError(f"{where}{err.strerror or err}"), _NOT_WRITTEN) from None
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        discard_inputs(inputs)
    click.echo(summary_text(totals, output or "standard output"), err=True)
    if totals.rejected:
        sys.exit(EXIT_REJECTED)
    if fail_on_violation and totals.violations:
        sys.exit(EXIT_VIOLATIONS)
    sys.exit(EXIT_OK)


def _protected(policy: str, events: tuple[str, ...]) -> list[tuple[str, os.stat_result]]:
    """The files -o must not be: the policy and the inputs (standard input too, when it is a file)."""
    out: list[tuple[str, os.stat_result]] = []
    for words, path in [(f"the policy {policy}", policy)] + [(f"the input {e}", e) for e in events]:
        try:
            if path == "-":
                if sys.stdin is None:
                    continue
                st = os.fstat(sys.stdin.fileno())
            else:
                st = os.stat(path)
        except (OSError, ValueError):  # reported where it is read
            continue
        out.append((words if path != "-" else "the file given as standard input", st))
    return out


def _needs_spool(event: str) -> bool:
    """Whether a --dask shard must be copied first: standard input, or a local path that is not a regular file (a pipe)."""
    if event == "-":
        return True
    try:
        mode = os.stat(event).st_mode
    except (OSError, ValueError):  # a URL, or missing: the distributed replay reports it
        return False
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


def _spool_named(event: str, folder: str) -> Path:
    """Copy a shard that can be read only once to a named file in ``folder`` (the workers open it by name)."""
    spool = tempfile.NamedTemporaryFile(prefix="escalation-stdin-", suffix=".jsonl", dir=folder, delete=False)  # noqa: SIM115
    try:
        with spool:
            if event == "-":
                if sys.stdin is None:
                    raise InputError("cannot read standard input (`-`): it is closed")
                shutil.copyfileobj(sys.stdin.buffer, spool)
            else:
                with open(event, "rb") as src:
                    shutil.copyfileobj(src, spool)
    except OSError as err:
        Path(spool.name).unlink(missing_ok=True)
        raise InputError(f"cannot copy {event} to {folder}: {err.strerror or err}") from None
    except BaseException:
        Path(spool.name).unlink(missing_ok=True)
        raise
    return Path(spool.name)


def _replay_dask(policy: str, events: tuple[str, ...], out_dir: str, options: ReplayOptions, fail_on_violation: bool) -> NoReturn:
    """`replay --dask`: a partitioned audit at OUT_DIR; standard input is spooled beside it, where the workers can read it."""
    spool_dir = str(Path(out_dir).absolute().parent)
    shards: list[str] = []
    spooled: list[Path] = []
    try:
        for event in events:
            if _needs_spool(event):  # read once, here: the workers could not read a pipe again
                spooled.append(_spool_named(event, spool_dir))
                shards.append(str(spooled[-1]))
            else:
                shards.append(event)
        manifest = replay_distributed(policy, shards, out_dir, options, names=list(events))
    finally:
        for spool in spooled:
            spool.unlink(missing_ok=True)
    totals = manifest.stats()
    click.echo(summary_text(totals, f"{out_dir} ({len(manifest.partitions)} parts, root hash {manifest.root_hash})"), err=True)
    if totals.rejected:
        sys.exit(EXIT_REJECTED)
    if fail_on_violation and totals.violations:
        sys.exit(EXIT_VIOLATIONS)
    sys.exit(EXIT_OK)
