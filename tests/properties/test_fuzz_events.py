"""Hostile event streams: every input record ends up as exactly one decision or rejected record, never a traceback.

Lines are built from valid records and then damaged — wrong types, null attributes,
hostile times, duplicate keys, NaN and infinities, huge integers and strings, deep
nesting, bad UTF-8, lone surrogates, byte flips, deletions, duplications, splices,
CRLF, blank lines — and replayed through the library (and a few through the command
line). The accounting is checked against the file's bytes, split independently of
the engine: one record per non-blank line, `seq` 1..N, the right `source`, a reason for
every rejection, the input object in every decision, a summary whose counts match,
and a log that `verify` accepts.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import ROOT, escalation_command
from escalation.api import Policy, ReplayOptions, replay
from escalation.audit import verify_stream
from escalation.check.checker import check_source
from escalation.compile.lower import CompiledPolicy, compile_policy
from escalation.errors import EventError
from escalation.lang.limits import DEFAULT_LIMITS, Limits
from escalation.lang.units import parse_time
from escalation.load import load_compiled
from escalation.replay import ENGINE, open_inputs, replay_records, write_log
from escalation.runtime import admit_conversation
from escalation.runtime.events import MAX_TIME, MIN_TIME, decode_line, iter_lines, validate

HOSTILE_POLICY = """policy "Hostile input" version "1"

event ticket.note { n: int, urgent: bool = false, level: lo | mid | hi = lo, wait: duration = 30s, who: string = "" }
action agent.transfer { queue: billing | tech = billing }

default forbid agent.hang_up severity high

let recent_notes = count ticket.note within 1m
let last_wait = last wait of ticket.note
let warnings = count agent.warn since customer.requests_supervisor

rule transfer_urgent_notes {
  on ticket.note[urgent and n > 2]
  require agent.transfer[queue == tech] or agent.warn within 30s
  because "Urgent notes go to the technical queue."
}

rule hang_up_after_notes {
  while recent_notes >= 3 and last_wait >= 10s
  permit agent.hang_up
}

rule warn_on_abuse {
  on customer.message[abuse in {insult, threat}]
  require agent.warn within 30s before interaction.end
  severity critical
}

rule supervisor_while_warned {
  while warnings >= 2 and time since agent.escalate > 2m
  require agent.escalate before interaction.end
}
"""

THREE_STRIKES = ROOT / "policies" / "three_strikes.esc"


def _hostile_policy() -> CompiledPolicy:
    result = check_source(HOSTILE_POLICY, "hostile.esc")
    assert result.checked is not None, [d.message for d in result.diagnostics]
    return compile_policy(result.checked, HOSTILE_POLICY.encode())


POLICIES = {"hostile": _hostile_policy(), "three_strikes": load_compiled(str(THREE_STRIKES))}

# ------------------------------------------------------------------ the accounting, computed from the bytes


def expected_lines(data: bytes, path: str) -> list[tuple[str, bytes]]:
    """(source, bytes) of every non-blank line, split here without the engine's code (interfaces.md §1)."""
    parts = data.split(b"\n")
    if parts[-1] == b"":
        parts.pop()
    out = []
    for number, part in enumerate(parts, 1):
        if part.endswith(b"\r"):
            part = part[:-1]
        if part.strip(b" \t"):
            out.append((f"{path}:{number}", part))
    return out


def check_accounting(data: bytes, path: str, records: list[dict[str, Any]], limits: Limits = DEFAULT_LIMITS) -> None:
    """Every non-blank line is exactly one decision or rejected record, in order; the summary agrees."""
    assert records[0]["kind"] == "header"
    assert records[-1]["kind"] == "summary"
    body = [r for r in records if r["kind"] in ("decision", "rejected")]
    closes = [r for r in records if r["kind"] == "close"]
    assert [r["kind"] for r in records] == ["header"] + ["decision" if r["kind"] == "decision" else "rejected" for r in body] + ["close"] * len(closes) + ["summary"]
    lines = expected_lines(data, path)
    assert len(body) == len(lines), f"{len(lines)} non-blank lines, {len(body)} records"
    last_time: dict[str, int] = {}
    for seq, (record, (source, raw)) in enumerate(zip(body, lines, strict=True), 1):
        assert record["seq"] == seq
        assert record["source"] == source
        if record["kind"] == "rejected":
            assert isinstance(record["reason"], str) and record["reason"].strip()
            if len(raw) <= limits.max_line_bytes:
                assert record["raw"] == raw.decode("utf-8", errors="replace")
            else:
                assert "max_line_bytes" in record["reason"]
                assert raw.decode("utf-8", errors="replace").startswith(record["raw"][:-1])
                assert len(record["raw"]) <= limits.max_line_bytes + 1
        else:
            event = json.loads(raw)
            assert record["event"] == event
            assert record["conversation"] == event["conversation"] and record["type"] == event["type"]
            now = parse_time(record["time"])
            previous = last_time.get(record["conversation"])
            assert previous is None or previous <= now, "time went backwards within a conversation"
            last_time[record["conversation"]] = now
    summary = records[-1]
    decisions = [r for r in body if r["kind"] == "decision"]
    violations = [v for r in decisions + closes for v in r["violations"]]
    assert summary["records"] == len(lines)
    assert summary["events"] == len(decisions)
    assert summary["rejected"] == len(body) - len(decisions)
    assert summary["conversations"] == len({r["conversation"] for r in decisions})
    assert summary["violations"] == len(violations)
    assert summary["by_kind"] == {k: sum(v["kind"] == k for v in violations) for k in ("forbidden_action", "missed_deadline", "unfulfilled")}
    assert summary["open_obligations"] == sum(len(r["open"]) for r in closes)


def replay_bytes(policy: CompiledPolicy, data: bytes, directory: str) -> tuple[list[dict[str, Any]], bytes]:
    """Replay ``data`` (the bytes of one event file) with the library; the records and the chained log."""
    fd, name = tempfile.mkstemp(prefix="events-", suffix=".jsonl", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        log = io.BytesIO()
        write_log(replay_records(policy, open_inputs([name])), log)
    finally:
        os.unlink(name)
    text = log.getvalue()
    records = [json.loads(line) for line in text.splitlines()]
    assert records[0]["inputs"][0]["path"] == name
    return records, text


def replay_and_check(policy: CompiledPolicy, data: bytes, directory: str) -> list[dict[str, Any]]:
    records, log = replay_bytes(policy, data, directory)
    check_accounting(data, records[0]["inputs"][0]["path"], records)
    assert verify_stream(io.BytesIO(log), ENGINE).ok
    return records


@pytest.fixture(scope="module")
def workdir() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="escalation-fuzz-events-") as d:
        yield d


# ------------------------------------------------------------------ hostile values, times and lines

BIG = 100_000
DEEP_ARRAYS = "[" * BIG + "]" * BIG
DEEP_OBJECTS = '{"a":' * BIG + "1" + "}" * BIG
HUGE_INT = "9" * BIG
HUGE_NEG_INT = "-" + "1" * BIG
HUGE_STRING = "x" * BIG
HUGE_FLOAT_DIGITS = "1" * 400 + ".5"

#: Whole lines that are hostile by themselves.
SPECIAL_LINES: list[bytes] = [
    b"",
    b" ",
    b"\t \t",
    b"\r",
    b"\x0c",
    b"\x00",
    b"null",
    b"[]",
    b"{}",
    b'"text"',
    b"1e999",
    b"NaN",
    b"-Infinity",
    b"\xef\xbb\xbf{}",  # a byte-order mark
    b"\xff\xfe\x00{",
    b"\xc3\x28",
    b"\xed\xa0\x80",  # an encoded surrogate: not UTF-8
    b"\xf4\x90\x80\x80",  # beyond U+10FFFF
    DEEP_ARRAYS.encode(),
    DEEP_OBJECTS.encode(),
    ("[" * BIG).encode(),
    HUGE_INT.encode(),
    b'{"conversation":"a","time":"2026-11-22T10:00:00Z","type":"agent.warn"}{}',
    b'{"conversation":"a","time":"2026-11-22T10:00:00Z","type":"agent.warn",}',
    b'{"conversation":"a","time":"2026-11-22T10:00:00Z","type":"agent.warn","type":"agent.warn"}',
    b'{"conversation":"a","conversation":"b","time":"2026-11-22T10:00:00Z","type":"agent.warn"}',
    b'{"\\ud800":1,"\\ud800":2}',
    b'{"conversation":"\\ud800","time":"2026-11-22T10:00:00Z","type":"agent.warn"}',
    b'{"conversation":"a","time":"2026-11-22T10:00:00Z","type":"agent.warn","x":"\\udfff"}',
    b'{"conversation":"a","time":"2026-11-22T10:00:00Z","type":"agent.warn","\\udc00":1}',
    b'{"conversation":"a","time":"2026-11-22T10:00:00Z","type":"agent.warn","x":"\\ud83d\\ude00"}',
    b'{"conversation":"a","time":"2026-11-22T10:00:00Z","type":"agent.warn","x":NaN}',
    b'{"conversation":"a","time":"2026-11-22T10:00:00Z","type":"agent.warn","x":Infinity}',
    b'{"conversation":"a","time":"2026-11-22T10:00:00Z","type":"agent.warn","x":-Infinity}',
    b'{"conversation":"a","time":"2026-11-22T10:00:00Z","type":"agent.warn","x":1e999}',
    b'{"conversation":"a","time":"2026-11-22T10:00:00Z","type":"agent.warn","x":-1e999}',
    b'{"conversation":"a","time":"2026-11-22T10:00:00Z","type":"agent.warn","x":' + HUGE_INT.encode() + b"}",
    b'{"conversation":"a","time":"2026-11-22T10:00:00Z","type":"agent.warn","x":' + HUGE_NEG_INT.encode() + b"}",
    b'{"conversation":"a","time":"2026-11-22T10:00:00Z","type":"agent.warn","x":' + HUGE_FLOAT_DIGITS.encode() + b"}",
    b'{"conversation":"a","time":"2026-11-22T10:00:00Z","type":"agent.warn","x":' + DEEP_ARRAYS.encode() + b"}",
    b'{"conversation":"' + HUGE_STRING.encode() + b'","time":"2026-11-22T10:00:00Z","type":"agent.warn"}',
    b'{"conversation":"a","time":"2026-11-22T10:00:00Z","type":"' + HUGE_STRING.encode() + b'"}',
    b'{"conversation":"a","time":"' + HUGE_STRING.encode() + b'","type":"agent.warn"}',
    b'{"conversation":"a","time":"2026-11-22T10:00:00Z","type":"customer.message","abuse":"' + HUGE_STRING.encode() + b'"}',
    b'{"conversation":"a","time":"2026-11-22T10:00:00Z","type":"ticket.note","n":1,"wait":1e303}',
    b'{"conversation":"a","time":"2026-11-22T10:00:00Z","type":"ticket.note","n":1,"wait":1.7976931348623157e308}',
    b'{"conversation":"a","time":"2026-11-22T10:00:00Z","type":"ticket.note","n":1,"wait":-0.0}',
    b'{"conversation":"a","time":"2026-11-22T10:00:00Z","type":"ticket.note","n":1,"wait":5e-324}',
    b'{"conversation":"a","time":"2026-11-22T10:00:00Z","type":"ticket.note","n":' + b"9" * 100 + b"}",
    b'{"conversation":"a","time":"2026-11-22T10:00:00Z","type":"ticket.note","n":' + b"9" * 101 + b"}",
    b'{"conversation":"a","time":"2026-11-22T10:00:00Z","type":"ticket.note","n":1.0}',
    b'{"conversation":"a","time":"2026-11-22T10:00:00Z","type":"ticket.note","n":true}',
    b'{"conversation":"a","time":"2026-11-22T10:00:00Z","type":"ticket.note","n":null}',
    b'{"conversation":"a","time":"2026-11-22T10:00:00Z","type":"ticket.note"}',
    b'{"conversation":"a","time":"2026-11-22T10:00:00Z","type":"ticket.note","n":1,"level":"LO"}',
    b'{"conversation":"a","time":"2026-11-22T10:00:00Z","type":"ticket.note","n":1,"urgent":"true"}',
    b'{"conversation":"a","time":"2026-11-22T10:00:00Z","type":"agent.warn","id":true}',
    b'{"conversation":"a","time":"2026-11-22T10:00:00Z","type":"agent.warn","id":[1]}',
    b'{"conversation":"a","time":"2026-11-22T10:00:00Z","type":"agent.warn","id":' + b"1" * 100 + b"}",
    b'{"conversation":"","time":"2026-11-22T10:00:00Z","type":"agent.warn"}',
    b'{"conversation":null,"time":"2026-11-22T10:00:00Z","type":"agent.warn"}',
    b'{"conversation":"a","time":null,"type":"agent.warn"}',
    b'{"conversation":"a","time":"2026-11-22T10:00:00Z","type":null}',
    b'{"conversation":"a","time":"2026-11-22T10:00:00Z"}',
    b'{"conversation":"a","time":"9999-12-31T23:59:59-01:00","type":"agent.warn"}',
    b'{"conversation":"a","time":"0001-01-01T00:00:00+01:00","type":"agent.warn"}',
    b'{"conversation":"a","time":"2016-12-31T23:59:60Z","type":"agent.warn"}',
    b'{"conversation":"a","time":"2026-02-29T10:00:00Z","type":"agent.warn"}',
    b'{"conversation":"a","time":"2026-11-22 10:00:00Z","type":"agent.warn"}',
    b'{"conversation":"a","time":"2026-11-22T10:00:00","type":"agent.warn"}',
    b'{"conversation":"a","time":"2026-11-22T10:00:00.0000001Z","type":"agent.warn"}',
    b'{"conversation":"a","time":"2026-11-22T10:00:00.1234560000Z","type":"agent.warn"}',
    b'{"conversation":"a","time":"2026-11-22t10:00:00.5z","type":"agent.warn"}',
    b'{"conversation":"a","time":"2026-11-22T10:00:00+24:00","type":"agent.warn"}',
    '{"conversation":"a","time":"٢٠٢٦-11-22T10:00:00Z","type":"agent.warn"}'.encode(),
]

_year = st.one_of(st.integers(1, 9998).map(lambda y: f"{y:04d}"), st.sampled_from(["0000", "10000", "99", "2O26"]))
_two = st.one_of(st.integers(0, 99).map(lambda n: f"{n:02d}"), st.sampled_from(["1", "001", "ab"]))
_fraction = st.one_of(st.just(""), st.from_regex(r"\.[0-9]{1,12}", fullmatch=True), st.sampled_from([".", ".5", ".000000000"]))
_zone = st.one_of(
    st.sampled_from(["Z", "z", "", "+00:00", "-00:00", "+0100", "UTC", " Z"]),
    st.builds(lambda sign, h, m: f"{sign}{h}:{m}", st.sampled_from("+-"), _two, _two),
)
#: Times of every shape: valid ones with offsets and fractions, bad dates, leap seconds, wrong separators.
hostile_times: st.SearchStrategy[str] = st.builds(
    lambda y, mo, d, sep, h, mi, s, frac, zone: f"{y}-{mo}-{d}{sep}{h}:{mi}:{s}{frac}{zone}",
    _year,
    _two,
    _two,
    st.sampled_from(["T", "T", "t", " ", "_"]),
    _two,
    _two,
    st.one_of(_two, st.just("60")),
    _fraction,
    _zone,
)

_surrogate_text = st.lists(st.one_of(st.characters(), st.integers(0xD800, 0xDFFF).map(chr)), max_size=6).map("".join)
#: JSON values of every type, wrong ones included, small enough to generate quickly.
hostile_values: st.SearchStrategy[Any] = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(10**30), 10**30),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=10),
        _surrogate_text,
        st.sampled_from(["", "insult", "tech", "lo", "supervisor", HUGE_STRING, "agent.warn"]),
    ),
    lambda children: st.one_of(st.lists(children, max_size=3), st.dictionaries(st.text(max_size=4), children, max_size=3)),
    max_leaves=8,
)

_TEMPLATES: list[dict[str, Any]] = [
    {"type": "customer.message", "abuse": "insult"},
    {"type": "customer.message", "abuse": "threat", "shouting": True},
    {"type": "customer.message"},
    {"type": "agent.warn"},
    {"type": "agent.hang_up"},
    {"type": "agent.escalate", "to": "supervisor"},
    {"type": "customer.requests_supervisor"},
    {"type": "interaction.end", "by": "agent"},
    {"type": "ticket.note", "n": 3, "urgent": True, "wait": 12.5, "level": "hi", "who": "ann"},
    {"type": "ticket.note", "n": 0},
    {"type": "agent.transfer", "queue": "tech"},
    {"type": "fault.determined", "party": "company"},
]
_KEYS = ["conversation", "time", "type", "id", "abuse", "shouting", "n", "urgent", "wait", "level", "who", "queue", "to", "party", "by", "extra"]


@st.composite
def hostile_objects(draw: st.DrawFn, conversation: str, second: int) -> Any:
    """A record from a template, then perhaps damaged: keys removed or set to hostile values, a hostile time."""
    record: dict[str, Any] = {"conversation": conversation, "time": f"2026-11-22T10:{second // 60 % 60:02d}:{second % 60:02d}Z"}
    record.update(draw(st.sampled_from(_TEMPLATES)))
    for _ in range(draw(st.integers(0, 2))):
        action = draw(st.integers(0, 4))
        key = draw(st.sampled_from(_KEYS))
        if action == 0:
            record.pop(key, None)
        elif action == 1:
            record["time"] = draw(hostile_times)
        else:
            record[key] = draw(hostile_values)
    if draw(st.integers(0, 30)) == 0:
        return draw(hostile_values)  # not an object at all
    return record


def _serialise(draw: st.DrawFn, value: Any) -> bytes:
    ascii_only = draw(st.booleans())
    text = json.dumps(value, ensure_ascii=ascii_only, allow_nan=True, separators=draw(st.sampled_from([(",", ":"), (", ", ": ")])))
    # without ensure_ascii, a lone surrogate becomes the (invalid) bytes a careless producer would write
    return text.encode("utf-8", errors="surrogatepass")


@st.composite
def damaged(draw: st.DrawFn, line: bytes, others: list[bytes]) -> bytes:
    """Byte-level damage: flips, deletions, duplications, splices with another line, truncation, a duplicate key."""
    data = bytearray(line)
    for _ in range(draw(st.integers(0, 3))):
        if not data:
            break
        kind = draw(st.integers(0, 5))
        i = draw(st.integers(0, len(data) - 1))
        j = draw(st.integers(i, min(len(data), i + 16)))
        if kind == 0:
            data[i] ^= draw(st.integers(1, 255))
        elif kind == 1:
            del data[i:j]
        elif kind == 2:
            data[i:i] = data[i:j]
        elif kind == 3 and others:
            other = draw(st.sampled_from(others))
            k = draw(st.integers(0, len(other)))
            data[i:] = other[k:]
        elif kind == 4:
            del data[i:]
        else:
            data[i:i] = draw(st.sampled_from([b'"type":"agent.warn",', b'"time":"2026-11-22T10:00:00Z",', b",", b"\\u", b"\r", b"\n", b"\t"]))
    return bytes(data)


@st.composite
def hostile_files(draw: st.DrawFn) -> bytes:
    """The bytes of an event file: good, damaged and special lines, LF or CRLF, maybe no final newline."""
    lines: list[bytes] = []
    conversations = draw(st.lists(st.sampled_from(["a", "b", "c-\u00e9", "d d", "e\u0000"]), min_size=1, max_size=3, unique=True))
    second = 0
    for _ in range(draw(st.integers(0, 14))):
        second += draw(st.sampled_from([0, 1, 10, 31, 70]))
        kind = draw(st.integers(0, 9))
        if kind == 0:
            lines.append(draw(st.sampled_from(SPECIAL_LINES)))
            continue
        line = _serialise(draw, draw(hostile_objects(draw(st.sampled_from(conversations)), second)))
        if kind <= 2:
            line = draw(damaged(line, lines))
        if kind == 3:
            line = b" \t" + line + b"  "
        lines.append(line)
    ends = [draw(st.sampled_from([b"\n", b"\n", b"\r\n"])) for _ in lines]
    data = b"".join(line + end for line, end in zip(lines, ends, strict=True))
    if lines and draw(st.booleans()):
        data = data[: -len(ends[-1])]  # no newline at the end of the file
    return data


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example])
@given(st.sampled_from(sorted(POLICIES)), hostile_files())
def test_every_line_of_a_hostile_stream_is_one_decision_or_one_rejection(workdir: str, policy: str, data: bytes) -> None:
    replay_and_check(POLICIES[policy], data, workdir)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(st.sampled_from(SPECIAL_LINES), max_size=8), st.sampled_from([b"\n", b"\r\n"]))
def test_special_lines_are_rejected_or_skipped_never_lost(workdir: str, lines: list[bytes], end: bytes) -> None:
    data = b"".join(line + end for line in lines)
    records = replay_and_check(POLICIES["hostile"], data, workdir)
    for record in records:
        if record["kind"] == "decision":  # only whole, valid records are accepted
            assert decode_line(json.dumps(record["event"], ensure_ascii=False).encode())


def test_each_special_line_alone_has_a_reason_or_is_blank(workdir: str) -> None:
    for line in SPECIAL_LINES:
        records = replay_and_check(POLICIES["hostile"], line + b"\n", workdir)
        kinds = [r["kind"] for r in records[1:-1] if r["kind"] != "close"]
        blank = not (line[:-1] if line.endswith(b"\r") else line).strip(b" \t")
        assert len(kinds) == (0 if blank else 1), line[:80]
        if kinds == ["rejected"]:
            assert records[1]["reason"].strip()


@settings(max_examples=150, deadline=None)
@given(hostile_times)
def test_a_hostile_time_is_accepted_only_when_it_is_rfc_3339_in_range(time: str) -> None:
    record = {"conversation": "a", "time": time, "type": "agent.warn"}
    try:
        event = validate(record, POLICIES["hostile"].vocabulary)
    except EventError as err:
        assert str(err).strip()
        return
    assert time.isascii() and time[10] in "Tt" and time[-1] in "Zz0123456789"
    assert MIN_TIME <= event.time <= MAX_TIME


# ------------------------------------------------------------------ limits: enormous lines and configurable bounds


def _padded_record(size: int) -> bytes:
    """A valid record padded with spaces inside the object to exactly ``size`` bytes."""
    head = b'{"conversation":"big","time":"2026-11-22T10:00:00Z","type":"agent.warn"'
    return head + b" " * (size - len(head) - 1) + b"}"


def test_lines_at_and_beyond_the_line_limit(workdir: str) -> None:
    limit = DEFAULT_LIMITS.max_line_bytes
    at_limit = _padded_record(limit)
    over = _padded_record(limit + 1)
    far_over = _padded_record(3 * limit)
    blank_and_huge = b" \t" * limit
    data = b"\n".join([at_limit, over, at_limit + b"\r", far_over, blank_and_huge, over + b"\r", b"x" * (limit + 2)]) + b"\r\n"
    records = replay_and_check(POLICIES["hostile"], data, workdir)
    body = [r for r in records if r["kind"] in ("decision", "rejected")]
    assert [r["kind"] for r in body] == ["decision", "rejected", "decision", "rejected", "rejected", "rejected"]
    for r in body:
        if r["kind"] == "rejected":
            assert r["reason"] == f"the line is longer than {limit} bytes (the `max_line_bytes` limit)"
            assert len(r["raw"]) <= limit + 1  # the rest of an enormous line is never held or written
    assert [r["source"].rsplit(":", 1)[1] for r in body] == ["1", "2", "3", "4", "6", "7"]  # line 5 is blank


def test_iter_lines_never_holds_more_than_the_limit_of_a_line() -> None:
    limits = Limits(max_line_bytes=10)
    data = b"0123456789\n" + b"x" * 1000 + b"\n" + b" " * 500 + b"\r\n" + b" " * 11 + b"\r\r\n" + b"y" * 13 + b"\r"
    lines = list(iter_lines("f", io.BytesIO(data), 1, limits))
    assert [(line.seq, line.source) for line in lines] == [(1, "f:1"), (2, "f:2"), (3, "f:4"), (4, "f:5")]
    assert lines[0].data == b"0123456789"
    assert all(len(line.data) <= 12 for line in lines)
    for line in lines[1:]:
        with pytest.raises(EventError, match=r"longer than 10 bytes \(the `max_line_bytes` limit\)"):
            decode_line(line.data, limits)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=60), st.integers(1, 20))
def test_iter_lines_agrees_with_a_plain_split_under_any_limit(data: bytes, limit: int) -> None:
    lines = list(iter_lines("f", io.BytesIO(data), 1, Limits(max_line_bytes=limit)))
    expected = expected_lines(data, "f")
    assert [line.source for line in lines] == [source for source, _ in expected]
    for line, (_, raw) in zip(lines, expected, strict=True):
        if len(raw) <= limit:
            assert line.data == raw
        else:
            assert raw.startswith(line.data) and len(line.data) == limit + 1


def test_the_limits_are_configurable_and_their_reasons_name_them() -> None:
    record = b'{"conversation":"a","time":"2026-11-22T10:00:00Z","type":"agent.warn","x":[[1]],"n":12345}'
    assert decode_line(record)["n"] == 12345
    with pytest.raises(EventError, match=r"longer than 20 bytes \(the `max_line_bytes` limit\)"):
        decode_line(record, Limits(max_line_bytes=20))
    with pytest.raises(EventError, match=r"nested more than 2 levels deep \(the `max_json_depth` limit\)"):
        decode_line(record, Limits(max_json_depth=2))
    with pytest.raises(EventError, match=r"integer of 5 digits, more than the 4 the `max_int_digits` limit allows"):
        decode_line(record, Limits(max_int_digits=4))
    with pytest.raises(EventError, match=r"nested more than 64 levels deep \(the `max_json_depth` limit\)"):
        decode_line(DEEP_ARRAYS.encode())
    with pytest.raises(EventError, match="integer of 100000 digits, more than the 100"):
        decode_line(b'{"x":' + HUGE_NEG_INT.encode() + b"}")
    with pytest.raises(ValueError, match="max_line_bytes"):
        Limits(max_line_bytes=0)
    assert Limits() == DEFAULT_LIMITS


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e999", "-1e999", "1" * 400 + ".5e400"])
def test_non_finite_numbers_are_rejected_wherever_they_stand(number: str) -> None:
    for template in ('{"x":%s}', '{"x":[1,{"y":%s}]}', "[%s]"):
        with pytest.raises(EventError, match="non-finite number"):
            decode_line((template % number).encode())


def test_reasons_quote_little_of_the_input_and_stay_valid_unicode() -> None:
    vocabulary = POLICIES["hostile"].vocabulary
    base = {"conversation": "a", "time": "2026-11-22T10:00:00Z"}
    cases: list[tuple[bytes | dict[str, Any], str | None]] = [
        ({**base, "type": "x" * BIG}, None),
        ({**base, "type": "customer.message", "abuse": "x" * BIG}, None),
        ({**base, "type": "agent.warn", "id": ["x" * BIG]}, None),
        ({**base, "time": "2026-11-22T10:00:00Z" + "0" * BIG, "type": "agent.warn"}, None),
        ({**base, "time": "\u0662\u0660\u0662\u0666-11-22T10:00:00Z", "type": "agent.warn"}, "RFC 3339"),
        ({**base, "time": "9999-12-31T23:59:59-00:01", "type": "agent.warn"}, "outside the years 0001 to 9800"),
        ({**base, "time": "0001-01-01T00:00:00+00:01", "type": "agent.warn"}, "outside the years 0001 to 9800"),
        ({**base, "type": "agent.wrn"}, "did you mean `agent.warn`"),
        ({**base, "type": "customer.message", "abuse": "insultt"}, "did you mean 'insult'"),
        (b'{"\\ud800":1,"\\ud800":2}', "twice"),
        (b'{"' + b"k" * BIG + b'":1,"' + b"k" * BIG + b'":2}', "twice"),
    ]
    for case, expected in cases:
        with pytest.raises(EventError) as caught:
            if isinstance(case, bytes):
                decode_line(case)
            else:
                validate(case, vocabulary)
        reason = str(caught.value)
        assert len(reason) < 300, reason[:300]
        reason.encode("utf-8")  # no lone surrogate: the audit log can hold it
        if expected is not None:
            assert expected in reason, reason
        elif "x" * 20 in reason:
            assert "did you mean" not in reason


def test_the_open_conversation_limit_rejects_a_new_conversation_with_a_reason() -> None:
    limits = Limits(max_open_conversations=2)
    admit_conversation(1, limits)
    with pytest.raises(EventError, match=r"already holds 2 open conversations \(the `max_open_conversations` limit\)"):
        admit_conversation(2, limits)


def test_a_replay_beyond_the_open_conversation_limit_rejects_events_of_new_conversations(workdir: str) -> None:
    data = b"".join(
        json.dumps({"conversation": c, "time": "2026-11-22T10:00:00Z", "type": "agent.warn"}).encode() + b"\n" for c in ["a", "b", "c", "a", "d", "b"]
    )
    path = Path(workdir) / "conversations.jsonl"
    path.write_bytes(data)
    policy = POLICIES["three_strikes"]
    options = ReplayOptions(limits=Limits(max_open_conversations=2))
    records = list(replay(Policy(policy), [str(path)], options=options))
    assert [r["kind"] for r in records[1:-1]] == ["decision", "decision", "rejected", "decision", "rejected", "decision"]
    assert "max_open_conversations" in records[3]["reason"]
    check_accounting(data, str(path), records)


# ------------------------------------------------------------------ known crashes (fixes outside events.py)


def test_an_obligation_due_after_the_year_9999_does_not_crash_the_replay(workdir: str) -> None:
    line = json.dumps({"conversation": "a", "time": "9999-12-31T23:59:59Z", "type": "customer.message", "abuse": "insult"}).encode()
    replay_and_check(POLICIES["three_strikes"], line + b"\n", workdir)


# ------------------------------------------------------------------ through the command line


def _cli_file(path: Path) -> bytes:
    good = [
        json.dumps({"conversation": "a", "time": f"2026-11-22T10:00:{s:02d}Z", **t}).encode()
        for s, t in enumerate(_TEMPLATES)
    ]
    data = b"\r\n".join(good[:3] + SPECIAL_LINES + good[3:]) + b"\n  \n" + _padded_record(DEFAULT_LIMITS.max_line_bytes + 5)
    path.write_bytes(data)
    return data


def test_the_command_line_replays_a_hostile_file_without_a_traceback(tmp_path: Path) -> None:
    events = tmp_path / "hostile.jsonl"
    data = _cli_file(events)
    policy = tmp_path / "hostile.esc"
    policy.write_text(HOSTILE_POLICY, encoding="utf-8")
    out = tmp_path / "audit.jsonl"
    proc = subprocess.run([*escalation_command(), "replay", str(policy), str(events), "-o", str(out)], capture_output=True, timeout=300)
    assert b"Traceback" not in proc.stderr + proc.stdout
    assert proc.returncode == 4, proc.stderr  # records were rejected
    records = [json.loads(line) for line in out.read_bytes().splitlines()]
    check_accounting(data, str(events), records)
    proc = subprocess.run([*escalation_command(), "verify", str(out), "--policy", str(policy), "--events", str(events)], capture_output=True, timeout=300)
    assert proc.returncode == 0, proc.stderr


def test_the_command_line_replays_hostile_standard_input_without_a_traceback(tmp_path: Path) -> None:
    data = _cli_file(tmp_path / "hostile.jsonl")
    proc = subprocess.run([*escalation_command(), "replay", str(THREE_STRIKES), "-"], input=data, capture_output=True, timeout=300)
    assert b"Traceback" not in proc.stderr
    assert proc.returncode == 4, proc.stderr
    check_accounting(data, "-", [json.loads(line) for line in proc.stdout.splitlines()])
    proc = subprocess.run(
        [*escalation_command(), "explain", str(THREE_STRIKES), "-", "--conversation", "a"], input=data, capture_output=True, timeout=300
    )
    assert b"Traceback" not in proc.stderr and proc.returncode == 0, proc.stderr
