"""The `escalation` command line: a thin layer over the library (interfaces.md §3)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import stat
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import click

from ..audit import MAX_IDLE_HORIZON_S, compare_log, verify_stream
from ..check import check_source, check_test_file
from ..compile import CompiledPolicy
from ..errors import (
    EXIT_OK,
    EXIT_POLICY,
    EXIT_REJECTED,
    EXIT_TAMPERED,
    EXIT_USAGE,
    EXIT_VIOLATIONS,
    Diagnostic,
    EscalationError,
    PolicyError,
    render_all,
)
from ..lang import TimeError, format_time, parse_time
from ..load import load_compiled
from ..replay import (
    ENGINE,
    Input,
    InputError,
    ParallelError,
    Replayer,
    SpillError,
    StrictStop,
    discard_inputs,
    open_inputs,
    replay_parallel,
    replay_records,
    write_log,
)
from ..replay import usable as parallel_usable
from ..streams import OutputError, check_target, temp_beside, write_atomically
from ..syntax import read_source
from ..version import __version__

# Exit codes (interfaces.md §3): those of errors (EXIT_OK ... EXIT_TAMPERED) are in errors.py, each error class carrying its own; these are for signals.
#: A closed standard output (`escalation replay ... | head`): the status of a Unix tool killed by SIGPIPE (128 + 13).
EXIT_BROKEN_PIPE = 141
#: SIGINT (Ctrl-C) and SIGTERM: 128 + the signal's number, as a shell reports a process they ended.
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


def _policy_files(paths: tuple[str, ...], with_tests: bool = False) -> list[str]:
    """Expand folders to the `.esc` policies inside them (and, ``with_tests``, their NAME.test.esc files)."""
    out: list[str] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            out.extend(str(f) for f in sorted(path.rglob("*.esc")) if with_tests or not f.name.endswith(".test.esc"))
        else:
            out.append(p)
    return out


def _fail(err: EscalationError, note: str = "") -> NoReturn:
    """Stop the command on ``err``: a policy's diagnostics, else ``error: `` and its sentence; the exit code its class carries."""
    click.echo(err.render() if isinstance(err, PolicyError) else f"error: {err}{note}", err=True)
    sys.exit(err.exit_code)


@contextlib.contextmanager
def _fresh_replay(audit: str, inputs: list[Input]) -> Iterator[None]:
    """Around `verify`'s fresh replay of ``inputs``: a failure to read or spill is one sentence, exit 2; the inputs' copies go."""
    try:
        yield
    except (InputError, SpillError) as err:
        _fail(err)
    except OSError as err:
        click.echo(f"error: cannot read {err.filename or audit}: {err.strerror or err}", err=True)
        sys.exit(EXIT_USAGE)
    finally:
        discard_inputs(inputs)


def _identical(audit: str, note: str | None, parts: str = "") -> NoReturn:
    """`verify` found the log identical to a fresh replay: the trust note, if any, then the verdict."""
    if note is not None:
        click.echo(note, err=True)
    click.echo(f"{audit}: intact, and identical to a fresh replay of its inputs{parts}", err=True)
    sys.exit(EXIT_OK)


def _render(diags: list[Diagnostic], source: str | None) -> str:
    return render_all(diags, source)


class _Group(click.Group):
    """The command group; a closed standard output ends any command quietly with :data:`EXIT_BROKEN_PIPE`.

    Click would exit 1 on a broken pipe; this catches it first. Standard output is then
    pointed at the null device, so that Python's last flush at exit cannot fail again.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            with_devnull = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(with_devnull, 1)
            finally:
                os.close(with_devnull)
            sys.exit(EXIT_BROKEN_PIPE)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="escalation")
def cli() -> None:
    """Check, format, test and replay `.esc` policies for handling angry and abusive customers."""


@cli.command()
@click.argument("policies", nargs=-1, required=True)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", help="json: one object with every diagnostic, for editors and CI")
def check(policies: tuple[str, ...], fmt: str) -> None:
    """Parse and check POLICIES (files or folders); exit 1 if any has an error."""
    all_diags: list[Diagnostic] = []
    errors = warnings = 0
    files = _policy_files(policies, with_tests=True)
    for path in files:
        try:
            source: str | None = read_source(path)
        except PolicyError as err:
            diags, source = err.diagnostics, err.source
        else:
            assert source is not None
            diags = check_test_file(source, path) if path.endswith(".test.esc") else check_source(source, path).diagnostics
        all_diags.extend(diags)
        errors += sum(d.is_error for d in diags)
        warnings += sum(not d.is_error for d in diags)
        if fmt == "text" and diags:
            click.echo(_render(diags, source))
            click.echo()
    if fmt == "json":
        click.echo(json.dumps({"diagnostics": [d.to_json() for d in all_diags], "errors": errors, "warnings": warnings}, indent=2, ensure_ascii=False))
    else:
        noun = "policy" if len(files) == 1 else "policies"
        click.echo(f"checked {len(files)} {noun}: {errors} error(s), {warnings} warning(s)", err=True)
    sys.exit(EXIT_POLICY if errors else EXIT_OK)


@cli.command()
@click.argument("policies", nargs=-1, required=True)
@click.option("--check", "check_only", is_flag=True, help="Change nothing; exit 1 if a file is not formatted")
def fmt(policies: tuple[str, ...], check_only: bool) -> None:
    """Rewrite POLICIES in the canonical layout, keeping comments."""
    from ..tooling.format import format_source, format_tests_source

    changed = failed = unwritable = 0
    for path in _policy_files(policies, with_tests=True):
        try:
            source = read_source(path)
            formatted = format_tests_source(source, path) if path.endswith(".test.esc") else format_source(source, path)
        except PolicyError as err:
            click.echo(err.render(), err=True)
            failed += 1
            continue
        except EscalationError as err:
            click.echo(f"{path}: {err}", err=True)
            failed += 1
            continue
        if formatted == source:
            continue
        changed += 1
        if check_only:
            click.echo(f"would reformat {path}")
        else:
            try:  # a symbolic link stays a link (its target is rewritten); the file keeps its mode
                write_atomically(path, formatted.encode("utf-8"))
            except OutputError as err:
                click.echo(f"error: {err}", err=True)
                unwritable += 1
                continue
            except OSError as err:
                click.echo(f"error: cannot rewrite {path}: {err.strerror or err}", err=True)
                unwritable += 1
                continue
            click.echo(f"reformatted {path}")
    if failed:
        sys.exit(EXIT_POLICY)
    if unwritable:
        sys.exit(EXIT_USAGE)
    sys.exit(EXIT_POLICY if (check_only and changed) else EXIT_OK)


def _load_policy(path: str) -> CompiledPolicy:
    """Load and compile a policy, or exit 1 with its diagnostics."""
    try:
        return load_compiled(path)
    except PolicyError as err:
        _fail(err)


def _parse_as_of(value: str | None) -> int | None:
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


#: The longest --idle-horizon: 10,000 years (in seconds), more than any two writable times are apart.


def _parse_horizon(value: str | None) -> int | None:
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


def _open_inputs(events: tuple[str, ...], spool_dir: str | None = None) -> list[Input]:
    try:
        return open_inputs(list(events), spool_dir)
    except InputError as err:
        _fail(err)


def _summary_text(r: Replayer, out: str) -> str:
    st = r.stats
    lines = [
        f"replayed {st.records} records into {out}: {st.events} events, {st.rejected} rejected, {st.conversations} conversations",
        f"violations: {st.violations}"
        + (" (" + ", ".join(f"{k} {v}" for k, v in st.by_kind.items() if v) + ")" if st.violations else ""),
    ]
    if st.by_rule:
        lines.append("by rule: " + ", ".join(f"{k} {v}" for k, v in sorted(st.by_rule.items(), key=lambda kv: (-kv[1], kv[0]))))
    lines.append(f"open obligations: {st.open_obligations}")
    return "\n".join(lines)


@cli.command()
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
    as_of_us = _parse_as_of(as_of)
    horizon_us = _parse_horizon(idle_horizon)
    if dask_scheduler is not None or out_dir is not None or partitions is not None:
        if dask_scheduler is None or out_dir is None:
            raise click.UsageError("--dask and --out-dir go together: a distributed replay writes a partitioned audit folder")
        if output is not None or strict or jobs > 1 or horizon_us is not None:
            raise click.UsageError("--dask does not combine with -o, --strict, --jobs or --idle-horizon")
    compiled = _load_policy(policy)
    if dask_scheduler is not None and out_dir is not None:
        _replay_dask(compiled, policy, events, dask_scheduler, out_dir, partitions, as_of_us, fail_on_violation)
    if output is None and sys.stdout is None:
        click.echo("error: standard output is closed: give -o FILE for the audit log", err=True)
        sys.exit(EXIT_USAGE)
    protected = _protected(policy, events)
    like = _check_output(output, protected)
    spool_dir = (os.path.dirname(output) or ".") if output is not None else None
    inputs = _open_inputs(events, spool_dir)
    replayer = Replayer(compiled, as_of_us, strict, horizon_us)
    tmp: str | None = None
    try:
        folder = spool_dir or tempfile.gettempdir()
        try:
            tmp_fd, tmp = temp_beside(output, like) if output is not None else tempfile.mkstemp(prefix=".escalation-", suffix=".tmp")
        except OSError as err:
            raise OutputError(f"cannot create a temporary file in the folder {folder}: {err.strerror or err}") from None
        total = sum(i.size or 0 for i in inputs)
        with os.fdopen(tmp_fd, "wb", buffering=1 << 20) as fh:
            if jobs > 1 and not strict and horizon_us is None and parallel_usable():
                replayer.stats = replay_parallel(compiled, inputs, as_of_us, jobs, fh, spool_dir)
                replayer.conversations = {}
            elif sys.stderr is not None and sys.stderr.isatty() and total > 1 << 20:
                with click.progressbar(length=total, label="replaying", file=sys.stderr) as bar:
                    write_log(replay_records(compiled, inputs, as_of_us, strict, bar.update, replayer), fh)
            else:
                write_log(replay_records(compiled, inputs, as_of_us, strict, None, replayer), fh)
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
        _fail(stop, " (--strict: no audit log was written)")
    except (InputError, OutputError, SpillError, ParallelError) as err:
        _fail(err, " (no audit log was written)")
    except OSError as err:  # a full disk, a failing device
        if isinstance(err, BrokenPipeError):  # `escalation replay ... | head`: the command group handles it
            raise
        where = f" {err.filename}" if err.filename else ""
        click.echo(f"error:{where} {err.strerror or err} (no audit log was written)", err=True)
        sys.exit(EXIT_USAGE)
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        discard_inputs(inputs)
    click.echo(_summary_text(replayer, output or "standard output"), err=True)
    if replayer.stats.rejected:
        sys.exit(EXIT_REJECTED)
    if fail_on_violation and replayer.stats.violations:
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


def _check_output(output: str | None, protected: list[tuple[str, os.stat_result]]) -> os.stat_result | None:
    """Exit 2 with a sentence unless -o is a new path in a folder, or a regular file that is not an input; its stat."""
    if output is None:
        return None
    try:
        return check_target(output, protected)
    except OutputError as err:
        _fail(err)


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


def _replay_dask(
    compiled: CompiledPolicy, policy: str, events: tuple[str, ...], scheduler: str, out_dir: str, partitions: int | None, as_of_us: int | None, fail_on_violation: bool
) -> NoReturn:
    """`replay --dask`: a partitioned audit at OUT_DIR; standard input is spooled beside it, where the workers can read it."""
    from ..replay.dask import DistributedError, replay_distributed

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
        manifest = replay_distributed(policy, shards, out_dir, scheduler=scheduler, as_of=as_of_us, partitions=partitions, names=list(events))
    except PolicyError as err:
        _fail(err)
    except (InputError, DistributedError) as err:
        _fail(err)
    finally:
        for spool in spooled:
            spool.unlink(missing_ok=True)
    replayer = Replayer(compiled)
    replayer.stats = manifest.stats()
    click.echo(_summary_text(replayer, f"{out_dir} ({len(manifest.partitions)} parts, root hash {manifest.root_hash})"), err=True)
    if replayer.stats.rejected:
        sys.exit(EXIT_REJECTED)
    if fail_on_violation and replayer.stats.violations:
        sys.exit(EXIT_VIOLATIONS)
    sys.exit(EXIT_OK)


#: What the auditor says about an option that changes verdicts: None when not given (the
#: header's value is taken on trust), else a 1-tuple of the value (microseconds, or None for `none`).
Claim = tuple[int | None] | None


def _claim_as_of(value: str | None) -> Claim:
    """`verify --as-of TIME|none`: the time the log must have been closed at, or that it was not."""
    if value is None:
        return None
    if value.strip().lower() == "none":
        return (None,)
    try:
        us = parse_time(value)
        format_time(us)  # a time the log can write (years 0001-9999 in UTC)
    except (TimeError, OverflowError, ValueError):
        raise click.BadParameter(f"{value!r} is not an RFC 3339 date-time such as 2026-11-30T00:00:00Z, nor `none`", param_hint="--as-of") from None
    return (us,)


def _claim_horizon(value: str | None) -> Claim:
    """`verify --idle-horizon DURATION|none`."""
    if value is None:
        return None
    if value.strip().lower() == "none":
        return (None,)
    return (_parse_horizon(value),)


def _show_as_of(us: int | None) -> str:
    return "no --as-of" if us is None else f"--as-of {format_time(us)}"


def _show_horizon(us: int | None) -> str:
    if us is None:
        return "no --idle-horizon"
    seconds = us // 1_000_000
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"--idle-horizon {seconds // size}{unit}"
    return f"--idle-horizon {seconds}s"


def _recorded_options(header: dict[str, Any]) -> tuple[int | None, int | None]:
    """(as_of, idle horizon) in microseconds, as a verified header or manifest records them."""
    as_of = header.get("as_of")
    horizon = header.get("idle_horizon")
    return (parse_time(as_of) if isinstance(as_of, str) else None, horizon * 1_000_000 if type(horizon) is int else None)


def _check_claims(where: str, recorded: tuple[int | None, int | None], as_of: Claim, horizon: Claim) -> tuple[int | None, int | None]:
    """The options to replay with: the auditor's, after checking that the log records the same (else exit 5)."""
    for claim, value, show, flag in ((as_of, recorded[0], _show_as_of, "--as-of"), (horizon, recorded[1], _show_horizon, "--idle-horizon")):
        if claim is not None and claim[0] != value:
            given = show(claim[0]) if claim[0] is not None else f"{flag} none"
            click.echo(f"{where}: the log's header says it was made with {show(value)}, but you gave {given}", err=True)
            sys.exit(EXIT_TAMPERED)
    return (recorded[0] if as_of is None else as_of[0], recorded[1] if horizon is None else horizon[0])


def _trust_note(recorded: tuple[int | None, int | None], as_of: Claim, horizon: Claim) -> str | None:
    """The note for options taken from the header on trust, because the auditor gave none."""
    taken = [show(value) for claim, value, show in ((as_of, recorded[0], _show_as_of), (horizon, recorded[1], _show_horizon)) if claim is None]
    flags = [flag for claim, flag in ((as_of, "--as-of"), (horizon, "--idle-horizon")) if claim is None]
    if not taken:
        return None
    one = len(taken) == 1
    return (
        f"note: {' and '.join(taken)} {'was' if one else 'were'} taken on trust from the log's header; "
        f"pass {' and '.join(flags)} (a value, or none) to check {'it' if one else 'them'}"
    )


def _verify_partitioned(audit: str, policy_path: str | None, event_paths: list[str], as_of: Claim, horizon: Claim) -> NoReturn:
    """`verify DIR`: a partitioned audit (a folder with manifest.json, or the manifest itself)."""
    from ..replay.dask import compare_manifest, verify_manifest

    try:
        result = verify_manifest(audit, ENGINE)
    except OSError as err:
        click.echo(f"error: cannot read {audit}: {err.strerror or err}", err=True)
        sys.exit(EXIT_USAGE)
    if not result.ok:
        click.echo(result.message, err=True)
        sys.exit(EXIT_TAMPERED)
    manifest = result.header or {}
    recorded = _recorded_options(manifest)
    _check_claims(audit, recorded, as_of, horizon)
    if policy_path is not None:
        compiled = _load_policy(policy_path)
        inputs = _open_inputs(tuple(event_paths))
        with _fresh_replay(audit, inputs):
            result = compare_manifest(audit, compiled, inputs)
        if not result.ok:
            click.echo(result.message, err=True)
            sys.exit(EXIT_TAMPERED)
        _identical(audit, _trust_note(recorded, as_of, horizon), f" ({len(manifest.get('partitions', []))} parts)")
    summary = result.summary or {}
    click.echo(
        f"{audit}: intact ({len(manifest.get('partitions', []))} parts, {summary.get('records')} records, {summary.get('violations')} violations)", err=True
    )
    sys.exit(EXIT_OK)


@cli.command(context_settings={"allow_extra_args": True})
@click.argument("audit")
@click.option("--policy", "policy_path", help="Also replay the inputs against this policy and compare byte for byte")
@click.option("--events", multiple=True, help="The event files the log was made from (with --policy)")
@click.option(
    "--as-of",
    "as_of",
    metavar="TIME|none",
    help="The --as-of the log must have been made with (`none`: without); the fresh replay uses it. "
    "Without it, the header's value is taken on trust (a note says so)",
)
@click.option(
    "--idle-horizon",
    "idle_horizon",
    metavar="DURATION|none",
    help="The --idle-horizon the log must have been made with (`none`: without); the fresh replay uses it. "
    "Without it, the header's value is taken on trust (a note says so)",
)
def verify(audit: str, policy_path: str | None, events: tuple[str, ...], as_of: str | None, idle_horizon: str | None) -> None:
    """Check AUDIT's hash chain, order and counts; with --policy and --events, replay and compare.

    Exit 0 intact (and identical to a fresh replay); 5 tampered, truncated, from another
    engine, made with other options than --as-of / --idle-horizon say, or different.
    """
    extra = list(click.get_current_context().args)
    event_paths = list(events) + extra
    if (policy_path is None) != (not event_paths):
        raise click.UsageError("--policy and --events go together")
    as_of_claim = _claim_as_of(as_of)
    horizon_claim = _claim_horizon(idle_horizon)
    from ..replay.dask import is_manifest

    if is_manifest(audit):
        _verify_partitioned(audit, policy_path, event_paths, as_of_claim, horizon_claim)
    try:
        with open(audit, "rb") as fh:
            result = verify_stream(fh, ENGINE)
    except OSError as err:
        click.echo(f"error: cannot read {audit}: {err.strerror or err}", err=True)
        sys.exit(EXIT_USAGE)
    if not result.ok:
        where = f"{audit}:{result.line}: " if result.line else f"{audit}: "
        click.echo(f"{where}{result.message}", err=True)
        sys.exit(EXIT_TAMPERED)
    header = result.header or {}
    recorded = _recorded_options(header)
    as_of_us, horizon_us = _check_claims(f"{audit}:1", recorded, as_of_claim, horizon_claim)
    if policy_path is None:
        summary = result.summary or {}
        click.echo(f"{audit}: intact ({summary.get('records')} records, {summary.get('violations')} violations)", err=True)
        sys.exit(EXIT_OK)
    compiled = _load_policy(policy_path)
    if compiled.sha256 != header["policy"]["sha256"]:
        click.echo(f"{audit}:1: the log was made with another policy (sha256 {header['policy']['sha256']}), not {policy_path} ({compiled.sha256})", err=True)
        sys.exit(EXIT_TAMPERED)
    inputs = _open_inputs(tuple(event_paths))
    with _fresh_replay(audit, inputs):
        recorded_inputs = [(i["path"], i["sha256"]) for i in header["inputs"]]
        if [d for _, d in recorded_inputs] != [i.sha256 for i in inputs]:
            click.echo(f"{audit}:1: the log was made from other inputs ({', '.join(p for p, _ in recorded_inputs)}) than those given", err=True)
            sys.exit(EXIT_TAMPERED)
        # the header records the paths as given then; replay under those names so the bytes can match
        for inp, (path, _) in zip(inputs, recorded_inputs, strict=True):
            inp.path = path
        with open(audit, "rb") as fh:  # the fresh replay's lines, one at a time, against the file's
            compared = compare_log(fh, replay_records(compiled, inputs, as_of_us, idle_horizon=horizon_us))
    if not compared.ok:
        click.echo(f"{audit}:{compared.line}: {compared.message}", err=True)
        sys.exit(EXIT_TAMPERED)
    _identical(audit, _trust_note(recorded, as_of_claim, horizon_claim))


@cli.command()
@click.argument("policy")
@click.argument("events", nargs=-1, required=True)
@click.option("--conversation", required=True, help="The conversation to explain")
@click.option("--seq", type=int, help="Explain only the moment the record with this seq (as in the audit log) arrived")
@click.option("--action", help="Explain only this action")
def explain(policy: str, events: tuple[str, ...], conversation: str, seq: int | None, action: str | None) -> None:
    """Why each action was permitted or forbidden when the conversation's events arrived."""
    from ..runtime.events import iter_lines
    from ..tooling.explain import explain_moment

    compiled = _load_policy(policy)
    if action is not None and action not in compiled.actions:
        click.echo(f"error: `{action}` is not an action of this policy", err=True)
        sys.exit(EXIT_USAGE)
    inputs = _open_inputs(events)
    replayer = Replayer(compiled)
    found = False

    def hook(ln: Any, ev: Any, inter: Any) -> None:  # runs before the event is applied
        nonlocal found
        if ev.conversation == conversation and (seq is None or ln.seq == seq):
            found = True
            for text in explain_moment(compiled, ln, ev, inter, action):
                click.echo(text)

    next_seq = 1
    try:
        for inp in inputs:
            with inp.open() as fh:
                for line in iter_lines(inp.path, fh, next_seq):
                    next_seq = line.seq + 1
                    if seq is not None and line.seq > seq:
                        break
                    replayer.record(line, hook)
    except (InputError, SpillError) as err:
        _fail(err)
    finally:
        replayer.close()
        discard_inputs(inputs)
    if not found:
        where = f"record {seq}" if seq is not None else "any accepted record"
        click.echo(f"error: conversation {conversation!r} has no event at {where}", err=True)
        sys.exit(EXIT_USAGE)
    sys.exit(EXIT_OK)


@cli.command("compile")
@click.argument("policy")
@click.option("--show", is_flag=True, help="Print the Python generated for the policy's step functions")
def compile_cmd(policy: str, show: bool) -> None:
    """Check and compile POLICY; with --show, print the generated Python (for debugging speed work)."""
    compiled = _load_policy(policy)
    if show:
        click.echo(compiled.generated)
    plans = compiled.plans
    click.echo(
        f"{policy}: {len(compiled.rule_order)} rules, {len(compiled.ops)} temporal operators, "
        f"{len(plans)} event types, {sum(len(p.step5) for p in plans.values())} rule evaluations across all step functions",
        err=True,
    )
    sys.exit(EXIT_OK)


def _register() -> None:
    from .test import test_cmd

    cli.add_command(test_cmd)


_register()


class Terminated(BaseException):
    """SIGTERM, raised in the main thread like KeyboardInterrupt for SIGINT, so that clean-up runs on the way out."""


def _on_sigterm(signum: int, frame: Any) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut the clean-up short
    raise Terminated


def main() -> None:
    """Entry point: never shows a Python traceback for an expected failure; Ctrl-C exits 130, SIGTERM 143.

    Both remove what the command was writing (a temporary log; a private copy of an
    input is deleted with the process in any case). A closed standard output exits 141
    (:class:`_Group`).
    """
    if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:  # not when the caller chose to ignore it
        signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        code = cli.main(standalone_mode=False)
    except (KeyboardInterrupt, click.exceptions.Abort):
        click.echo("interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except Terminated:
        click.echo("terminated", err=True)
        sys.exit(EXIT_TERMINATED)
    except click.ClickException as err:
        err.show()
        sys.exit(err.exit_code)
    except BrokenPipeError:  # written outside a command (click's own output)
        sys.exit(EXIT_BROKEN_PIPE)
    sys.exit(code if isinstance(code, int) else 0)
