"""Tamper evidence: `escalation verify` exits 5 and names the first bad line for any edit of a real audit log.

The log is written by a real `escalation replay` (with rejected records, violations and
close records). Hypothesis picks the positions: a field changed in any record (kept in
canonical form, the hash left alone), a line deleted, inserted or moved, the file cut
anywhere. The line `verify` names must be the first line where the damaged file differs
from the log (a missing line counts). A log checked against another policy or other
inputs fails, and so does a complete forgery that re-computes every hash, once it is
verified against its inputs.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import ROOT, escalation_command
from escalation.cli.app import cli
from helpers.log_compare import json_paths

POLICY = ROOT / "policies" / "three_strikes.esc"
_KINDS = [
    {"type": "customer.message", "abuse": "insult"},
    {"type": "customer.message", "abuse": "none"},
    {"type": "customer.message", "abuse": "threat", "shouting": True},
    {"type": "agent.warn"},
    {"type": "agent.hang_up"},
    {"type": "customer.requests_supervisor"},
    {"type": "agent.escalate", "to": "supervisor"},
    {"type": "fault.determined", "party": "company"},
    {"type": "agent.apologize"},
    {"type": "issue.resolved"},
    {"type": "interaction.end", "by": "agent"},
]


def event_lines(rng: random.Random, count: int) -> bytes:
    """``count`` seeded event lines over six conversations, one in ten of them bad (so some records are rejected)."""
    clock = {f"c{i}": 0 for i in range(6)}
    out = []
    for _ in range(count):
        conversation = rng.choice(sorted(clock))
        clock[conversation] += rng.choice([5, 20, 45, 120])
        record = {"conversation": conversation, "time": f"2026-11-22T10:{clock[conversation] // 60 % 60:02d}:{clock[conversation] % 60:02d}Z", **rng.choice(_KINDS)}
        line = json.dumps(record)
        if rng.random() < 0.1:
            line = rng.choice([line[:-1], line.replace("agent.", "agnt."), '{"conversation": "x"}', "[1, 2]"])
        out.append(line + "\n")
    return "".join(out).encode()


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path, Path, bytes]]:
    """(policy, events, audit log, its bytes): 80 lines of a real log, rejected records and close records included."""
    d = tmp_path_factory.mktemp("tamper")
    events = d / "events.jsonl"
    events.write_bytes(event_lines(random.Random(7), 60))
    policy = d / "policy.esc"
    policy.write_bytes(POLICY.read_bytes())
    audit = d / "audit.jsonl"
    proc = subprocess.run(
        [*escalation_command(), "replay", str(policy), str(events), "-o", str(audit), "--as-of", "2026-11-03T00:00:00Z"], capture_output=True, timeout=300
    )
    assert proc.returncode in (0, 4), proc.stderr
    data = audit.read_bytes()
    kinds = [json.loads(line)["kind"] for line in data.splitlines()]
    assert {"header", "decision", "rejected", "close", "summary"} <= set(kinds), kinds
    yield policy, events, audit, data


def canonical(record: Any) -> bytes:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def verify(path: Path, *extra: str) -> tuple[int, str]:
    """`escalation verify` in this process (fast enough for hypothesis); exit code and standard error."""
    result = CliRunner().invoke(cli, ["verify", str(path), *extra])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.stderr
    return result.exit_code, result.stderr


def first_difference(original: list[bytes], damaged: list[bytes]) -> int:
    """The 1-based number of the first line where ``damaged`` differs from ``original`` (a missing line counts)."""
    for number, (a, b) in enumerate(zip(original, damaged, strict=False), 1):
        if a != b:
            return number
    return min(len(original), len(damaged)) + 1


def assert_caught(tmp: Path, original: bytes, damaged: bytes) -> None:
    assert damaged != original
    tmp.write_bytes(damaged)
    code, err = verify(tmp)
    expected = first_difference(original.splitlines(keepends=True), damaged.splitlines(keepends=True))
    assert code == 5, err
    named = re.search(rf"{re.escape(str(tmp))}:(\d+): ", err)
    assert named is not None, f"no line named in: {err!r}"
    assert int(named.group(1)) == expected, err


def test_the_untouched_log_verifies(made: tuple[Path, Path, Path, bytes]) -> None:
    policy, events, audit, _ = made
    assert verify(audit)[0] == 0
    assert verify(audit, "--policy", str(policy), "--events", str(events))[0] == 0


# ------------------------------------------------------------------ edits anywhere


_replacements = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 10**6),
    st.text(max_size=8),
    st.sampled_from(["decision", "rejected", "close", "summary", "0" * 64, "f" * 64, []]),
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.data())
def test_changing_any_field_of_any_record_is_caught_at_that_line(made: tuple[Path, Path, Path, bytes], tmp_path: Path, data: st.DataObject) -> None:
    *_, original = made
    lines = original.splitlines(keepends=True)
    k = data.draw(st.integers(0, len(lines) - 1), label="record")
    record = json.loads(lines[k])
    path = data.draw(st.sampled_from(list(json_paths(record))), label="field")
    parent = record
    for step in path[:-1]:
        parent = parent[step]
    how = data.draw(st.sampled_from(["replace", "delete", "rename"]), label="how")
    if how == "replace":
        old = parent[path[-1]]
        new = data.draw(_replacements.filter(lambda v: canonical(v) != canonical(old)), label="value")
        parent[path[-1]] = new
    elif how == "delete":
        del parent[path[-1]]
    elif isinstance(parent, dict):
        parent[str(path[-1]) + "_"] = parent.pop(path[-1])
    else:
        parent.insert(0, parent.pop())  # a list: rotate it instead
        if canonical(parent) == canonical(json.loads(lines[k])):
            parent.append("extra")
    lines[k] = canonical(record) + b"\n"  # still canonical: only the hash can tell
    if lines[k] == original.splitlines(keepends=True)[k]:  # e.g. rotating a one-element list
        lines[k] = lines[k].replace(b"{", b'{"x":1,', 1)
    assert_caught(tmp_path / "audit.jsonl", original, b"".join(lines))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.data())
def test_flipping_any_byte_is_caught_at_its_line(made: tuple[Path, Path, Path, bytes], tmp_path: Path, data: st.DataObject) -> None:
    *_, original = made
    position = data.draw(st.integers(0, len(original) - 1), label="byte")
    damaged = bytearray(original)
    damaged[position] ^= data.draw(st.integers(1, 255), label="mask")
    assert_caught(tmp_path / "audit.jsonl", original, bytes(damaged))


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.data())
def test_deleting_a_line_is_caught_where_it_was(made: tuple[Path, Path, Path, bytes], tmp_path: Path, data: st.DataObject) -> None:
    *_, original = made
    lines = original.splitlines(keepends=True)
    k = data.draw(st.integers(0, len(lines) - 2), label="line")  # the last line: see the truncation tests
    assert_caught(tmp_path / "audit.jsonl", original, b"".join(lines[:k] + lines[k + 1 :]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.data())
def test_inserting_a_line_is_caught_where_it_was_put(made: tuple[Path, Path, Path, bytes], tmp_path: Path, data: st.DataObject) -> None:
    *_, original = made
    lines = original.splitlines(keepends=True)
    at = data.draw(st.integers(0, len(lines)), label="at")
    source = data.draw(st.integers(0, len(lines) - 1), label="copy of")
    new = data.draw(
        st.sampled_from(
            [
                lines[source],
                b"\n",
                canonical({"kind": "rejected", "seq": 1, "source": "x:1", "reason": "r", "raw": "", "prev": "0" * 64, "hash": "0" * 64}) + b"\n",
                canonical({**json.loads(lines[source]), "prev": json.loads(lines[at - 1])["hash"] if at else "0" * 64}) + b"\n",
            ]
        ),
        label="line",
    )
    assert_caught(tmp_path / "audit.jsonl", original, b"".join([*lines[:at], new, *lines[at:]]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.data())
def test_reordering_lines_is_caught_at_the_first_moved_line(made: tuple[Path, Path, Path, bytes], tmp_path: Path, data: st.DataObject) -> None:
    *_, original = made
    lines = original.splitlines(keepends=True)
    i = data.draw(st.integers(0, len(lines) - 2), label="from")
    j = data.draw(st.integers(i + 1, len(lines) - 1), label="to")
    if data.draw(st.booleans(), label="swap"):
        lines[i], lines[j] = lines[j], lines[i]
    else:
        lines.insert(j, lines.pop(i))
    assert_caught(tmp_path / "audit.jsonl", original, b"".join(lines))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.data())
def test_cutting_the_log_inside_a_line_is_caught_at_that_line(made: tuple[Path, Path, Path, bytes], tmp_path: Path, data: st.DataObject) -> None:
    *_, original = made
    ends = {i + 1 for i, byte in enumerate(original) if byte == 0x0A}
    cut = data.draw(st.integers(1, len(original) - 1).filter(lambda c: c not in ends), label="cut")
    assert_caught(tmp_path / "audit.jsonl", original, original[:cut])


def test_cutting_the_log_at_a_line_boundary_names_the_first_missing_line(made: tuple[Path, Path, Path, bytes], tmp_path: Path) -> None:
    *_, original = made
    lines = original.splitlines(keepends=True)
    for keep in (len(lines) - 1, len(lines) // 2, 1):
        assert_caught(tmp_path / "audit.jsonl", original, b"".join(lines[:keep]))


def test_cutting_the_log_at_a_line_boundary_fails_verification(made: tuple[Path, Path, Path, bytes], tmp_path: Path) -> None:
    *_, original = made
    lines = original.splitlines(keepends=True)
    for keep in range(len(lines)):
        tmp = tmp_path / "audit.jsonl"
        tmp.write_bytes(b"".join(lines[:keep]))
        code, err = verify(tmp)
        assert code == 5, (keep, err)
        assert "cut short" in err or "empty" in err, err


# ------------------------------------------------------------------ wrong policy, wrong inputs, complete forgeries


def test_verifying_against_another_policy_fails(made: tuple[Path, Path, Path, bytes], tmp_path: Path) -> None:
    policy, events, audit, _ = made
    other = tmp_path / "other.esc"
    other.write_bytes(policy.read_bytes() + b"\n# one more comment\n")  # the same rules, other bytes
    code, err = verify(audit, "--policy", str(other), "--events", str(events))
    assert code == 5 and f"{audit}:1:" in err and "another policy" in err


def test_verifying_against_other_inputs_fails(made: tuple[Path, Path, Path, bytes], tmp_path: Path) -> None:
    policy, events, audit, _ = made
    lines = events.read_bytes().splitlines(keepends=True)
    variants = {
        "one byte changed": b"".join(lines).replace(b"insult", b"threat", 1),
        "a line missing": b"".join(lines[:-1]),
        "a line added": b"".join(lines) + lines[-1],
        "two lines swapped": b"".join([lines[1], lines[0], *lines[2:]]),
        "a blank line added": b"\n" + b"".join(lines),
    }
    for name, content in variants.items():
        other = tmp_path / "events.jsonl"
        other.write_bytes(content)
        code, err = verify(audit, "--policy", str(policy), "--events", str(other))
        assert code == 5 and f"{audit}:1:" in err, (name, err)
    code, _ = verify(audit, "--policy", str(policy), "--events", str(events), str(events))
    assert code == 5  # the right file twice is other inputs too


def _rechain(lines: list[bytes]) -> bytes:
    """Recompute every `prev` and `hash`, as a forger who knows the format would."""
    out = []
    prev = "0" * 64
    for line in lines:
        record = json.loads(line)
        record.pop("hash", None)
        record["prev"] = prev
        prev = hashlib.sha256(canonical(record)).hexdigest()
        record["hash"] = prev
        out.append(canonical(record) + b"\n")
    return b"".join(out)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.data())
def test_a_rechained_forgery_passes_the_chain_but_not_a_replay_of_the_inputs(made: tuple[Path, Path, Path, bytes], tmp_path: Path, data: st.DataObject) -> None:
    """The chain alone is no signature: a forger who re-computes every hash is caught by `verify --policy --events`."""
    policy, events, _, original = made
    lines = original.splitlines(keepends=True)
    decisions = [i for i, line in enumerate(lines) if json.loads(line)["kind"] == "decision"]
    k = data.draw(st.sampled_from(decisions), label="record")
    record = json.loads(lines[k])
    record["permitted"] = sorted(set(record["permitted"]) ^ {"agent.hang_up"})  # hanging up becomes allowed, or not
    forged = _rechain([*lines[:k], canonical(record) + b"\n", *lines[k + 1 :]])
    tmp = tmp_path / "forged.jsonl"
    tmp.write_bytes(forged)
    assert verify(tmp)[0] == 0  # the chain and the counts are consistent: only the inputs can tell
    code, err = verify(tmp, "--policy", str(policy), "--events", str(events))
    assert code == 5 and f"{tmp}:{k + 1}: differs from a fresh replay" in err, err


def test_verify_on_the_command_line_names_the_line_without_a_traceback(made: tuple[Path, Path, Path, bytes], tmp_path: Path) -> None:
    *_, original = made
    lines = original.splitlines(keepends=True)
    damaged = tmp_path / "damaged.jsonl"
    damaged.write_bytes(b"".join([*lines[:5], lines[6], lines[5], *lines[7:]]))
    proc = subprocess.run([*escalation_command(), "verify", str(damaged)], capture_output=True, timeout=120)
    assert proc.returncode == 5 and f"{damaged}:6: ".encode() in proc.stderr and b"Traceback" not in proc.stderr


def test_verify_names_a_deeply_nested_line_without_a_traceback(made: tuple[Path, Path, Path, bytes], tmp_path: Path) -> None:
    *_, original = made
    lines = original.splitlines(keepends=True)
    deep = tmp_path / "deep.jsonl"
    deep.write_bytes(b"".join([*lines[:3], b"[" * 100_000 + b"\n", *lines[3:]]))
    proc = subprocess.run([*escalation_command(), "verify", str(deep)], capture_output=True, timeout=120)
    assert proc.returncode == 5 and f"{deep}:4: ".encode() in proc.stderr and b"Traceback" not in proc.stderr
