"""`escalation verify AUDIT [--policy POLICY --events EVENTS...]`: is the log intact, and is it what a fresh replay writes?

AUDIT is one log, a partitioned audit (a folder with ``manifest.json``) or a decision
service's audit folder (segments, interfaces.md §5). The
verdicts (intact, tampered, different) are results, written here with exit 0 or 5;
an error (an unreadable input, an invalid policy) goes to :mod:`escalation.cli.app`.
"""

from __future__ import annotations

import collections
import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple, NoReturn

import attrs
import click

from ..api import Engine, Policy, ReplayOptions, load, replay_inputs
from ..audit import (
    PREVIOUS_SEGMENT,
    SegmentInput,
    Totals,
    compare_log,
    input_digest,
    is_segment_folder,
    segment_closed,
    segment_header,
    segment_inputs,
    segment_summary,
    verify_segments,
    verify_stream,
)
from ..errors import EXIT_OK, EXIT_TAMPERED, EscalationError
from ..lang import TimeError, format_time, parse_time
from ..replay import ENGINE, Input, discard_inputs, open_inputs
from .common import parse_horizon


@attrs.frozen(slots=True)
class Claim:
    """What the auditor says about an option that changes verdicts (`--as-of`, `--idle-horizon`): its value, None for `none`."""

    value: int | None  # microseconds


class Recorded(NamedTuple):
    """The options a verified header or manifest says the log was made with (microseconds)."""

    as_of: int | None
    idle_horizon: int | None


def _verdict(message: str, code: int) -> NoReturn:
    click.echo(message, err=True)
    sys.exit(code)


@contextlib.contextmanager
def _fresh_replay(audit: str, inputs: list[Input]) -> Iterator[None]:
    """Around the fresh replay of ``inputs``: a failure to read is one sentence, exit 2; the inputs' copies go."""
    try:
        yield
    except OSError as err:
        raise EscalationError(f"cannot read {err.filename or audit}: {err.strerror or err}") from None
    finally:
        discard_inputs(inputs)


def _identical(audit: str, note: str | None, parts: str = "") -> NoReturn:
    """The log is identical to a fresh replay: the trust note, if any, then the verdict."""
    if note is not None:
        click.echo(note, err=True)
    _verdict(f"{audit}: intact, and identical to a fresh replay of its inputs{parts}", EXIT_OK)


def _claim_as_of(value: str | None) -> Claim | None:
    """`verify --as-of TIME|none`: the time the log must have been closed at, or that it was not."""
    if value is None:
        return None
    if value.strip().lower() == "none":
        return Claim(None)
    try:
        us = parse_time(value)
        format_time(us)  # a time the log can write (years 0001-9999 in UTC)
    except (TimeError, OverflowError, ValueError):
        raise click.BadParameter(f"{value!r} is not an RFC 3339 date-time such as 2026-11-30T00:00:00Z, nor `none`", param_hint="--as-of") from None
    return Claim(us)


def _claim_horizon(value: str | None) -> Claim | None:
    """`verify --idle-horizon DURATION|none`."""
    if value is None:
        return None
    if value.strip().lower() == "none":
        return Claim(None)
    return Claim(parse_horizon(value))


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


def _recorded_options(header: dict[str, Any]) -> Recorded:
    as_of = header.get("as_of")
    horizon = header.get("idle_horizon")
    return Recorded(parse_time(as_of) if isinstance(as_of, str) else None, horizon * 1_000_000 if type(horizon) is int else None)


def _check_claims(where: str, recorded: Recorded, as_of: Claim | None, horizon: Claim | None) -> ReplayOptions:
    """The options to replay with: the auditor's, after checking that the log records the same (else exit 5)."""
    for claim, value, show, flag in ((as_of, recorded.as_of, _show_as_of, "--as-of"), (horizon, recorded.idle_horizon, _show_horizon, "--idle-horizon")):
        if claim is not None and claim.value != value:
            given = show(claim.value) if claim.value is not None else f"{flag} none"
            _verdict(f"{where}: the log's header says it was made with {show(value)}, but you gave {given}", EXIT_TAMPERED)
    return ReplayOptions(
        as_of=recorded.as_of if as_of is None else as_of.value, idle_horizon=recorded.idle_horizon if horizon is None else horizon.value
    )


def _trust_note(recorded: Recorded, as_of: Claim | None, horizon: Claim | None) -> str | None:
    """The note for options taken from the header on trust, because the auditor gave none."""
    taken = [show(value) for claim, value, show in ((as_of, recorded.as_of, _show_as_of), (horizon, recorded.idle_horizon, _show_horizon)) if claim is None]
    flags = [flag for claim, flag in ((as_of, "--as-of"), (horizon, "--idle-horizon")) if claim is None]
    if not taken:
        return None
    one = len(taken) == 1
    return (
        f"note: {' and '.join(taken)} {'was' if one else 'were'} taken on trust from the log's header; "
        f"pass {' and '.join(flags)} (a value, or none) to check {'it' if one else 'them'}"
    )


def _cannot_read(audit: str, err: OSError) -> EscalationError:
    return EscalationError(f"cannot read {audit}: {err.strerror or err}")


def _verify_partitioned(audit: str, policy_path: str | None, event_paths: list[str], as_of: Claim | None, horizon: Claim | None) -> NoReturn:
    """`verify DIR`: a partitioned audit (a folder with manifest.json, or the manifest itself)."""
    from ..replay.dask import compare_manifest, verify_manifest  # lazily: partitioned audits belong to the Dask extra's driver

    try:
        result = verify_manifest(audit, ENGINE)
    except OSError as err:
        raise _cannot_read(audit, err) from None
    if not result.ok:
        _verdict(result.message, EXIT_TAMPERED)
    manifest = result.header or {}
    recorded = _recorded_options(manifest)
    _check_claims(audit, recorded, as_of, horizon)
    if policy_path is not None:
        compiled = load(policy_path).compiled
        inputs = open_inputs(event_paths)
        with _fresh_replay(audit, inputs):
            result = compare_manifest(audit, compiled, inputs)
        if not result.ok:
            _verdict(result.message, EXIT_TAMPERED)
        _identical(audit, _trust_note(recorded, as_of, horizon), f" ({len(manifest.get('partitions', []))} parts)")
    summary = result.summary or {}
    _verdict(f"{audit}: intact ({len(manifest.get('partitions', []))} parts, {summary.get('records')} records, {summary.get('violations')} violations)", EXIT_OK)


def _segment_policies(folder: Path, paths: list[str]) -> dict[str, Policy]:
    """The given policies by sha256; an error naming the first policy a segment names that none of them is."""
    policies = {p.sha256: p for p in map(load, paths)}
    for seg in segment_inputs(folder, {}):
        named = seg.header.get("policy") or {}
        if named.get("sha256") not in policies:
            raise EscalationError(
                f"{seg.segment.log}: the segment was written under policy {named.get('name')!r} version {named.get('version')!r} "
                f"(sha256 {named.get('sha256')}), which none of the --policy files is: give that policy file too"
            )
    return policies


def _expected_segment(engine: Engine, seg: SegmentInput) -> Iterator[dict[str, Any]]:
    """What the service writes for ``seg`` given ``engine``'s state: its header, the record of each line, its summary if closed."""
    yield segment_header(engine.policy, seg.segment, seg.header.get(PREVIOUS_SEGMENT))
    totals, seen = Totals(), set[str]()
    for record in engine.records(seg.lines):
        totals.add(record, seen)
        yield record
    if segment_closed(seg.segment):
        yield segment_summary(totals, input_digest(seg.segment))


def _verify_segments(audit: str, policy_paths: list[str]) -> NoReturn:
    """`verify DIR [--policy P...]` for a service's audit folder: every segment and the links; with the policies, one
    replay of all the segments' inputs in order (each segment under its own policy, its seq from 1), byte for byte."""
    folder = Path(audit)
    found = verify_segments(folder, ENGINE)
    if not found.result.ok:
        _verdict(found.result.message, EXIT_TAMPERED)
    if not policy_paths:
        _verdict(f"{audit}: intact ({found.segments} segments, {found.records} records, {found.violations} violations)", EXIT_OK)
    policies = _segment_policies(folder, policy_paths)
    engine: Engine | None = None
    earlier: list[SegmentInput] = []
    for seg in segment_inputs(folder):
        policy = policies[seg.policy_sha256]
        if engine is None or engine.policy.digest != policy.digest:  # a reload: the new policy's state is a replay of all before
            engine = Engine(policy)
            for before in earlier:
                collections.deque(engine.records(before.lines), maxlen=0)
        with open(seg.segment.log, "rb") as fh:
            compared = compare_log(fh, _expected_segment(engine, seg))
        if not compared.ok:
            _verdict(f"{seg.segment.log}:{compared.line}: {compared.message}", EXIT_TAMPERED)
        earlier.append(seg)
    _verdict(f"{audit}: intact, and identical to a fresh replay of its inputs ({found.segments} segments, {found.records} records)", EXIT_OK)


def _compare_with_fresh_replay(audit: str, header: dict[str, Any], policy: Policy, event_paths: list[str], options: ReplayOptions) -> None:
    """Replay the inputs as the header names them and compare line by line with the file; exit 5 at the first difference."""
    inputs = open_inputs(event_paths)
    with _fresh_replay(audit, inputs):
        recorded_inputs = [(i["path"], i["sha256"]) for i in header["inputs"]]
        if [d for _, d in recorded_inputs] != [i.sha256 for i in inputs]:
            _verdict(f"{audit}:1: the log was made from other inputs ({', '.join(p for p, _ in recorded_inputs)}) than those given", EXIT_TAMPERED)
        # the header records the paths as given then; replay under those names so the bytes can match
        for inp, (path, _) in zip(inputs, recorded_inputs, strict=True):
            inp.path = path
        with open(audit, "rb") as fh:  # the fresh replay's lines, one at a time, against the file's
            compared = compare_log(fh, replay_inputs(policy, inputs, options))
    if not compared.ok:
        _verdict(f"{audit}:{compared.line}: {compared.message}", EXIT_TAMPERED)


@click.command(context_settings={"allow_extra_args": True})
@click.argument("audit")
@click.option(
    "--policy",
    "policy_paths",
    multiple=True,
    help="Also replay the inputs against this policy and compare byte for byte (for a service's folder: every policy its segments name)",
)
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
def verify(audit: str, policy_paths: tuple[str, ...], events: tuple[str, ...], as_of: str | None, idle_horizon: str | None) -> None:
    """Check AUDIT's hash chain, order and counts; with --policy and --events, replay and compare.

    AUDIT may be a service's audit folder (`escalation serve`): then every segment and the
    links between them are checked, and with --policy P... (every policy the segments
    name) their inputs are replayed and compared byte for byte.

    Exit 0 intact (and identical to a fresh replay); 5 tampered, truncated, cut, from another
    engine, made with other options than --as-of / --idle-horizon say, or different.
    """
    extra = list(click.get_current_context().args)
    if is_segment_folder(audit):
        if events or as_of is not None or idle_horizon is not None:
            raise click.UsageError("a service's audit folder holds its own inputs and options: give only --policy")
        _verify_segments(audit, list(policy_paths) + extra)
    if len(policy_paths) > 1:
        raise click.UsageError("give one --policy (several only for a service's audit folder)")
    policy_path = policy_paths[0] if policy_paths else None
    event_paths = list(events) + extra
    if (policy_path is None) != (not event_paths):
        raise click.UsageError("--policy and --events go together")
    as_of_claim = _claim_as_of(as_of)
    horizon_claim = _claim_horizon(idle_horizon)
    from ..replay.dask import is_manifest  # lazily: partitioned audits belong to the Dask extra's driver

    if is_manifest(audit):
        _verify_partitioned(audit, policy_path, event_paths, as_of_claim, horizon_claim)
    try:
        with open(audit, "rb") as fh:
            result = verify_stream(fh, ENGINE)
    except OSError as err:
        raise _cannot_read(audit, err) from None
    if not result.ok:
        where = f"{audit}:{result.line}: " if result.line else f"{audit}: "
        _verdict(f"{where}{result.message}", EXIT_TAMPERED)
    header = result.header or {}
    recorded = _recorded_options(header)
    options = _check_claims(f"{audit}:1", recorded, as_of_claim, horizon_claim)
    if policy_path is None:
        summary = result.summary or {}
        _verdict(f"{audit}: intact ({summary.get('records')} records, {summary.get('violations')} violations)", EXIT_OK)
    policy = load(policy_path)
    if policy.sha256 != header["policy"]["sha256"]:
        _verdict(f"{audit}:1: the log was made with another policy (sha256 {header['policy']['sha256']}), not {policy_path} ({policy.sha256})", EXIT_TAMPERED)
    _compare_with_fresh_replay(audit, header, policy, event_paths, options)
    _identical(audit, _trust_note(recorded, as_of_claim, horizon_claim))
