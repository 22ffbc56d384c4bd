"""The Dask replay of a policy that reads customer history (interfaces.md §2, language.md §9): a first pass, then by customer.

Every test compares with a serial replay of the same lines: per seq the same decision and
rejected records, the same close records (in the serial order once merged by each
conversation's first decision) and the same summary. Most runs use Dask's local threaded
scheduler (``scheduler=None``: in-process, fast); one uses a cluster of worker processes, so
that what crosses between tasks is pickled. Then the partitioned audit's verification:
the customer rule recorded in the manifest and the parts' headers, a record moved to the
wrong part, and the distinct customers of the totals.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("dask", reason="Dask is not installed: pip install -e '.[dask]' to run the distributed replay tests")

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from escalation.audit import MANIFEST, AuditWriter, Totals, canonical
from escalation.compile import CompiledPolicy
from escalation.lang import Limits
from escalation.load import compile_source
from escalation.replay import ENGINE, Replayer, open_inputs, replay_records, write_log
from escalation.replay.dask import compare_manifest, iter_records, part_name, replay_distributed, root_hash, verify_manifest
from escalation.replay.parallel import replay_parallel
from escalation.replay.partition import admission_pass, key_of, owner_key
from helpers.customer_streams import customer_streams
from helpers.log_compare import same_log
from helpers.policy_strategies import mentioned

ROOT = Path(__file__).resolve().parents[3]

#: A policy that reads customer history (windows the generated streams' gaps reach), with obligations for close records.
POLICY = """policy "Strikes across contacts" version "1"

default forbid agent.hang_up severity high
action agent.refuse_service
default forbid agent.refuse_service

let warned_this_call = seen agent.warn
let warnings_lately = count agent.warn within 2m across contacts
let abuse_since_warning = count customer.message[abuse != none] since agent.warn across contacts
let refused_lately = seen agent.refuse_service within 1m across contacts

rule warn_on_abuse {
  on customer.message[abuse in {insult, harassment, discrimination, threat}]
  require agent.warn or agent.hang_up within 30s
}

rule end_after_warning {
  while warned_this_call and abuse_since_warning >= 1
  permit agent.hang_up
}

rule second_contact_loses_service {
  while warnings_lately >= 2 and not warned_this_call
  permit agent.refuse_service
}

rule while_refused {
  while refused_lately
  permit agent.hang_up
}

rule break_after_end {
  on interaction.end if abuse_since_warning >= 1
  require agent.take_break within 15m
}
"""
COMPILED = compile_source(POLICY, "customers.esc")
assert COMPILED.reads_customer_history
VOCABULARY = COMPILED.vocabulary
THREE_STRIKES = str(ROOT / "policies" / "three_strikes.esc")
BAD = [b"not json", b'{"conversation": 3}', b"[1, 2]", b"\xff\xfe", b'{"conversation": "c1", "time": "2026-11-22T10:00:00Z", "type": "agent.dance"}']


def _policy_file(folder: Path) -> str:
    path = folder / "customers.esc"
    path.write_text(POLICY, encoding="utf-8")
    return str(path)


def _write(folder: Path, lines: list[bytes], cut: int | None = None) -> list[str]:
    """The lines in one file, or in two cut at ``cut``."""
    pieces = [lines] if cut is None else [lines[:cut], lines[cut:]]
    paths = []
    for k, piece in enumerate(pieces):
        path = folder / f"events-{k}.jsonl"
        path.write_bytes(b"".join(line + b"\n" for line in piece))
        paths.append(str(path))
    return paths


def _serial_log(policy: CompiledPolicy, paths: list[str], as_of: int | None = None, limits: Limits | None = None) -> bytes:
    out = io.BytesIO()
    r = Replayer(policy, as_of, limits=limits) if limits is not None else Replayer(policy, as_of)
    write_log(replay_records(policy, open_inputs(paths), as_of, replayer=r), out)
    return out.getvalue()


def _bare(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in ("prev", "hash")}


def _parts(out: Path) -> list[list[dict[str, Any]]]:
    parts: list[list[dict[str, Any]]] = []
    for index, record in iter_records(out):
        while len(parts) <= index:
            parts.append([])
        parts[index].append(record)
    return parts


def assert_serial(out: Path, serial_log: bytes) -> None:
    """The partitioned audit at ``out`` holds exactly the serial log's records: per seq, the closes in order, the summary."""
    serial = [json.loads(line) for line in serial_log.splitlines()]
    parts = _parts(out)
    body = {r["seq"]: _bare(r) for part in parts for r in part if r["kind"] in ("decision", "rejected")}
    assert body == {r["seq"]: _bare(r) for r in serial if r["kind"] in ("decision", "rejected")}
    first: dict[str, int] = {}
    for r in serial:
        if r["kind"] == "decision":
            first.setdefault(r["conversation"], r["seq"])
    closes = sorted((_bare(r) for part in parts for r in part if r["kind"] == "close"), key=lambda r: first[r["conversation"]])
    assert closes == [_bare(r) for r in serial if r["kind"] == "close"]
    manifest = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    assert manifest["summary"] == {k: v for k, v in serial[-1].items() if k not in ("kind", "prev", "hash")}


# ------------------------------------------------------------------ generated streams: serial vs Dask vs --jobs 2


@st.composite
def streams_with_rejections(draw: st.DrawFn) -> list[bytes]:
    """Multi-customer streams (late binding, anonymous callers, interleaving) with lines the replay must reject.

    Extra records of a few conversations (new ones too) are dropped in at drawn places, with
    a time taken from anywhere in the stream (often earlier: a conversation's or a customer's
    clock going backwards) and a drawn customer (another one: foreign; a number; none), and
    malformed lines.
    """
    records = draw(customer_streams(VOCABULARY, max_conversations=6, max_customers=3, max_events=30, prefer=mentioned(POLICY, VOCABULARY)))
    lines = [json.dumps(r).encode() for r in records]
    times = [r["time"] for r in records] or ["2026-11-22T10:00:00Z"]
    for _ in range(draw(st.integers(0, 6))):
        at = draw(st.integers(0, len(lines)))
        if draw(st.integers(0, 3)) == 0:
            lines.insert(at, draw(st.sampled_from(BAD)))
            continue
        extra: dict[str, Any] = {
            "conversation": draw(st.sampled_from(["c1", "c2", "c3", "z1", "z2"])),
            "time": draw(st.sampled_from(times)),
            "type": draw(st.sampled_from(["agent.warn", "customer.message", "interaction.start"])),
        }
        if extra["type"] == "customer.message":
            extra["abuse"] = "insult"
        customer = draw(st.sampled_from([None, "k1", "k2", "k3", 7, ""]))
        if customer is not None:
            extra["customer"] = customer
        lines.insert(at, json.dumps(extra).encode())
    return lines


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(lines=streams_with_rejections(), partitions=st.integers(1, 4), cut=st.integers(0, 60), block=st.sampled_from([64, 256, 4096]))
def test_dask_equals_serial_and_jobs_on_multi_customer_streams(lines: list[bytes], partitions: int, cut: int, block: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        paths = _write(folder, lines, min(cut, len(lines)))
        serial = _serial_log(COMPILED, paths)
        out = folder / "out"
        manifest = replay_distributed(_policy_file(folder), paths, str(out), scheduler=None, partitions=partitions, block_bytes=block)
        assert manifest.data["partition_by"] == "customer"
        assert_serial(out, serial)
        result = verify_manifest(out, ENGINE)
        assert result.ok, result.message
        result = compare_manifest(out, COMPILED, open_inputs(paths))
        assert result.ok, result.message
        jobs = io.BytesIO()
        replay_parallel(COMPILED, open_inputs(paths), None, 2, jobs)
        same_log(jobs.getvalue(), serial)


# ------------------------------------------------------------------ the first pass's rejections reach every partition


def ev(conversation: str, second: int, type_: str = "agent.warn", **extra: Any) -> dict[str, Any]:
    return {"conversation": conversation, "time": f"2026-11-22T10:{second // 60:02d}:{second % 60:02d}Z", "type": type_, **extra}


def _two_customers_apart(count: int) -> tuple[str, str]:
    """Two customer names whose conversations go to different partitions of ``count``."""
    k = next(f"k{n}" for n in range(100) if key_of(f"k{n}") % count == 0)
    other = next(f"k{n}" for n in range(100) if key_of(f"k{n}") % count == 1)
    return k, other


def test_a_rejection_seen_only_from_another_partition_is_written_by_the_partition_that_gets_the_line(tmp_path: Path) -> None:
    """Conversation "b" names customer K at a time earlier than K's latest event (rejected: K's clock), then binds to K2.

    "b" goes with K2, to a partition that never sees K's clock; the rejected line is written,
    with the first pass's reason, by a partition that holds none of K's conversations.
    """
    k, k2 = _two_customers_apart(2)
    events = [ev("a", 10, "interaction.start", customer=k), ev("b", 5, "interaction.start", customer=k), ev("b", 20, "agent.warn", customer=k2)]
    for n in range(3):  # the rejected line is seq 5: its slot (seq mod 2) is 1, and K's partition is 0
        events.insert(1, ev(f"anon{n}", 1 + n, "interaction.start"))
    lines = [json.dumps(e).encode() for e in events]
    paths = _write(tmp_path, lines)
    serial_log = _serial_log(COMPILED, paths)
    serial = [json.loads(line) for line in serial_log.splitlines()]
    rejected = [r for r in serial if r["kind"] == "rejected"]
    assert len(rejected) == 1 and f'customer "{k}"' in rejected[0]["reason"] and "earlier than the latest event" in rejected[0]["reason"]
    out = tmp_path / "out"
    replay_distributed(_policy_file(tmp_path), paths, str(out), scheduler=None, partitions=2)
    assert_serial(out, serial_log)
    parts = _parts(out)
    holder = next(i for i, part in enumerate(parts) if any(r.get("seq") == rejected[0]["seq"] for r in part))
    k_part = next(i for i, part in enumerate(parts) if any(r.get("customer") == k for r in part))
    b_part = next(i for i, part in enumerate(parts) if any(r.get("conversation") == "b" for r in part))
    assert rejected[0]["seq"] == 5 and k_part == 0 and holder == b_part == 1
    assert not any(r.get("customer") == k for r in parts[holder])  # K's clock is never seen there: only the first pass could tell
    assert verify_manifest(out, ENGINE).ok and compare_manifest(out, COMPILED, open_inputs(paths)).ok


def test_the_open_conversations_limit_counts_every_partitions_conversations(tmp_path: Path) -> None:
    """``max_open_conversations`` is applied by the first pass, over all the conversations, as a serial replay applies it."""
    limits = Limits(max_open_conversations=3)
    events = [ev(f"c{n}", n, "interaction.start", customer=f"k{n % 4}") for n in range(8)] + [ev("c1", 30, customer="k1"), ev("c6", 31)]
    paths = _write(tmp_path, [json.dumps(e).encode() for e in events])
    serial_log = _serial_log(COMPILED, paths, limits=limits)
    reasons = [json.loads(line)["reason"] for line in serial_log.splitlines() if b'"kind":"rejected"' in line]
    assert len(reasons) == 6 and all("max_open_conversations" in r for r in reasons)
    out = tmp_path / "out"
    replay_distributed(_policy_file(tmp_path), paths, str(out), scheduler=None, partitions=3, limits=limits)
    assert_serial(out, serial_log)
    assert compare_manifest(out, COMPILED, open_inputs(paths), limits).ok
    routing = admission_pass(COMPILED, open_inputs(paths), True, limits)
    assert sorted(routing.rejections) == [4, 5, 6, 7, 8, 10] and routing.conversations == ["c0", "c1", "c2"]


def test_a_cluster_of_worker_processes_writes_the_same_parts(tmp_path: Path) -> None:
    """What crosses between the tasks (the first pass, each block's slice of it, the chunks) is pickled between processes."""
    pytest.importorskip("distributed")
    lines = [json.dumps(e).encode() for e in _fixed_stream()]
    paths = _write(tmp_path, lines, len(lines) // 2)
    policy = _policy_file(tmp_path)
    threads, procs = tmp_path / "threads", tmp_path / "procs"
    one = replay_distributed(policy, paths, str(threads), scheduler=None, partitions=3, block_bytes=700)
    two = replay_distributed(policy, paths, str(procs), scheduler="local:2", partitions=3, block_bytes=700)
    assert one.data == two.data
    for index in range(3):
        assert (threads / part_name(index)).read_bytes() == (procs / part_name(index)).read_bytes()
    assert_serial(procs, _serial_log(COMPILED, paths))


def _fixed_stream() -> list[dict[str, Any]]:
    """Forty conversations of six customers: a quarter bound late, some anonymous, a few foreign, non-string or late records."""
    kinds = ["interaction.start", "customer.message", "agent.warn", "customer.message", "interaction.end"]
    events: list[dict[str, Any]] = []
    for n in range(40):
        customer = None if n % 7 == 0 else f"k{n % 6}"
        for k, type_ in enumerate(kinds):
            e = ev(f"d{n}", 2 * n + 3 * k, type_)
            if type_ == "customer.message":
                e["abuse"] = "insult"
            if type_ == "interaction.end":
                e["by"] = "agent"
            if customer is not None and k == (1 if n % 4 == 0 else 0):
                e["customer"] = customer
            if k == 3 and n % 9 == 0:
                e["customer"] = "k-foreign" if n % 2 else 5
            events.append(e)
    events.sort(key=lambda e: e["time"])
    events.insert(50, ev("late", 1, "interaction.start", customer="k1"))  # k1's clock went on long before
    return events


# ------------------------------------------------------------------ verifying a customer-partitioned audit


@pytest.fixture
def by_customer(tmp_path: Path) -> tuple[Path, list[str]]:
    lines = [json.dumps(e).encode() for e in _fixed_stream()]
    paths = _write(tmp_path, lines)
    out = tmp_path / "audit"
    replay_distributed(_policy_file(tmp_path), paths, str(out), scheduler=None, partitions=3, block_bytes=1000)
    return out, paths


def test_the_manifest_and_the_headers_name_the_customer_rule(by_customer: tuple[Path, list[str]]) -> None:
    out, paths = by_customer
    manifest = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    assert manifest["partition_by"] == "customer"
    for index, part in enumerate(_parts(out)):
        assert part[0]["partition"] == {"index": index, "count": 3, "by": "customer"}
        customers = {r["customer"] for r in part if r["kind"] == "decision" and r["customer"] is not None}
        assert all(owner_key("", c) % 3 == index for c in customers)  # every conversation of a customer in its customer's part
    assert verify_manifest(out, ENGINE).ok
    assert compare_manifest(out, COMPILED, open_inputs(paths)).ok


def _rewrite(part: Path, records: list[dict[str, Any]]) -> Totals:
    """Write ``records`` (a header, body, closes; the summary is recounted) as a freshly chained part; returns its totals."""
    totals, seen = Totals(), set()
    for r in records[1:]:
        totals.add(r, seen)
    with part.open("wb") as fh:
        writer = AuditWriter(fh)
        for r in records:
            writer.write(_bare(r))
        writer.write(totals.summary())
    return totals


def _forge(out: Path, edit: Callable[[list[list[dict[str, Any]]]], None]) -> None:
    """Edit the parts' records, re-chain every part with a recounted summary, and make the manifest match: only ownership can tell."""
    parts = [[r for r in part if r["kind"] != "summary"] for part in _parts(out)]
    edit(parts)
    manifest = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    total = Totals()
    for index, records in enumerate(parts):
        path = out / part_name(index)
        total.merge(_rewrite(path, records))
        data = path.read_bytes()
        manifest["partitions"][index].update(
            records=len(data.splitlines()), final_hash=json.loads(data.splitlines()[-1])["hash"], sha256=hashlib.sha256(data).hexdigest()
        )
    manifest["root_hash"] = root_hash(p["final_hash"] for p in manifest["partitions"])
    manifest["summary"] = total.counts()
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True), encoding="utf-8")


def _move(parts: list[list[dict[str, Any]]], pick: Callable[[dict[str, Any]], bool]) -> None:
    """Move the first decision ``pick`` accepts to the next part, at its place in seq order."""
    source = next(i for i, part in enumerate(parts) if any(r["kind"] == "decision" and pick(r) for r in part))
    record = next(r for r in parts[source] if r["kind"] == "decision" and pick(r))
    parts[source].remove(record)
    _insert(parts[(source + 1) % len(parts)], record)


def _insert(part: list[dict[str, Any]], record: dict[str, Any]) -> None:
    """Put a decision record into a part's records at its place in seq order (before the closes)."""
    at = next((i for i, r in enumerate(part) if r["kind"] == "close" or (r["kind"] != "header" and r["seq"] > record["seq"])), len(part))
    part.insert(at, record)


def test_a_forged_copy_that_changes_nothing_verifies(by_customer: tuple[Path, list[str]]) -> None:
    """The forger of the next tests makes consistent parts and manifest: untouched, they verify (so the failures are ownership's)."""
    out, _ = by_customer
    _forge(out, lambda parts: None)
    result = verify_manifest(out, ENGINE)
    assert result.ok, result.message


@pytest.mark.parametrize(
    "pick",
    [
        pytest.param(lambda r: r["customer"] is not None, id="a bound decision"),
        pytest.param(lambda r: r["customer"] is None and r["conversation"] == "d4", id="an unbound decision of a conversation that binds late"),
        pytest.param(lambda r: r["conversation"] == "d0", id="a decision of an anonymous conversation"),
    ],
)
def test_a_record_moved_to_another_part_fails_verify(by_customer: tuple[Path, list[str]], pick: Callable[[dict[str, Any]], bool]) -> None:
    out, paths = by_customer
    _forge(out, lambda parts: _move(parts, pick))
    result = verify_manifest(out, ENGINE)
    assert not result.ok and "partition" in result.message, result.message
    assert result.line is not None and result.message.startswith(str(out / "part-")), result.message
    assert not compare_manifest(out, COMPILED, open_inputs(paths)).ok


def test_a_whole_customer_moved_to_another_part_fails_verify(by_customer: tuple[Path, list[str]]) -> None:
    """All of k1's conversations moved together: consistent among themselves, but not where the rule puts k1."""
    out, _ = by_customer

    def move_k1(parts: list[list[dict[str, Any]]]) -> None:
        home = owner_key("", "k1") % 3
        conversations = {r["conversation"] for r in parts[home] if r["kind"] == "decision" and r["customer"] == "k1"}
        moved = [r for r in parts[home] if r["kind"] == "decision" and r["conversation"] in conversations]
        parts[home] = [r for r in parts[home] if r not in moved]
        for record in moved:
            _insert(parts[(home + 1) % 3], record)

    _forge(out, move_k1)
    result = verify_manifest(out, ENGINE)
    assert not result.ok and "k1" in result.message and "belong to partition" in result.message, result.message


def test_the_rule_cannot_be_edited_out_of_the_manifest(by_customer: tuple[Path, list[str]]) -> None:
    out, paths = by_customer
    manifest = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    for value in (None, "conversation", "customers", 1):
        edited = dict(manifest)
        if value is None:
            del edited["partition_by"]
        else:
            edited["partition_by"] = value
        (out / MANIFEST).write_text(json.dumps(edited, indent=2), encoding="utf-8")
        result = verify_manifest(out, ENGINE)
        assert not result.ok, value
        assert ("partition_by" in result.message) if value in ("customers", 1) else ("the header names partition" in result.message), result.message
        if value is None:
            compared = compare_manifest(out, COMPILED, open_inputs(paths))
            assert not compared.ok and "partitioned by conversation, but a replay of this policy partitions by customer" in compared.message


# ------------------------------------------------------------------ the conversation rule: distinct customers in the totals


def test_a_customer_split_over_partitions_counts_once_in_the_manifest_and_in_verify(tmp_path: Path) -> None:
    """three_strikes reads no customer history, so it partitions by conversation: one customer's two conversations in two parts.

    Each part's summary counts the customer; the manifest, like the serial summary, counts it once,
    and a manifest that adds the parts' counts up fails verify.
    """
    a = next(f"c{n}" for n in range(100) if key_of(f"c{n}") % 2 == 0)
    b = next(f"c{n}" for n in range(100) if key_of(f"c{n}") % 2 == 1)
    events = [ev(a, 0, "interaction.start", customer="k"), ev(b, 1, "interaction.start"), ev(b, 2, customer="k"), ev("anon", 3, "interaction.start")]
    paths = _write(tmp_path, [json.dumps(e).encode() for e in events])
    policy = compile_source(Path(THREE_STRIKES).read_text(encoding="utf-8"), THREE_STRIKES)
    serial_log = _serial_log(policy, paths)
    assert json.loads(serial_log.splitlines()[-1])["customers"] == 1
    out = tmp_path / "out"
    manifest = replay_distributed(THREE_STRIKES, paths, str(out), scheduler=None, partitions=2)
    assert "partition_by" not in manifest.data  # the conversation rule: a manifest as before the customer rule
    assert [part[-1]["customers"] for part in _parts(out)] == [1, 1]
    assert manifest.summary["customers"] == 1 and manifest.stats().customers == 1
    result = verify_manifest(out, ENGINE)
    assert result.ok and result.summary is not None and result.summary["customers"] == 1, result.message
    data = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    data["summary"]["customers"] = 2
    (out / MANIFEST).write_text(json.dumps(data, indent=2), encoding="utf-8")
    result = verify_manifest(out, ENGINE)
    assert not result.ok and "customers" in result.message, result.message


def test_a_manifest_of_the_conversation_rule_still_verifies_and_compares(tmp_path: Path) -> None:
    """An audit of a policy that reads no customer history keeps the manifest and headers it had (no rule named)."""
    paths = [str(ROOT / "examples" / "sample.jsonl")]
    out = tmp_path / "out"
    replay_distributed(THREE_STRIKES, paths, str(out), scheduler=None, partitions=3)
    assert all(part[0]["partition"] == {"index": i, "count": 3} for i, part in enumerate(_parts(out)))
    policy = compile_source(Path(THREE_STRIKES).read_text(encoding="utf-8"), THREE_STRIKES)
    assert verify_manifest(out, ENGINE).ok and compare_manifest(out, policy, open_inputs(paths)).ok
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    data = json.loads((copy / MANIFEST).read_text(encoding="utf-8"))
    data["partition_by"] = "customer"  # the rule flipped: the headers say otherwise
    (copy / MANIFEST).write_text(json.dumps(data, indent=2), encoding="utf-8")
    assert not verify_manifest(copy, ENGINE).ok


def test_canonical_bytes_of_the_rule_field() -> None:
    assert canonical({"partition_by": "customer"}) == b'{"partition_by":"customer"}'
