"""`--jobs N` writes byte for byte the log of a serial replay."""

from __future__ import annotations

import io
import json
import tempfile
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from escalation import check_source
from escalation.compile.lower import compile_policy
from escalation.errors import EventError
from escalation.lang.limits import Limits
from escalation.replay import open_inputs, parallel, replay_records, write_log
from escalation.replay.parallel import ParallelError, replay_parallel
from escalation.replay.partition import conversation_key, owner, parent_share, slot
from escalation.runtime.events import decode_line
from helpers.log_compare import same_log
from helpers.policy_strategies import event_streams, mentioned

POLICY = (Path(__file__).resolve().parents[3] / "policies" / "three_strikes.esc").read_text(encoding="utf-8")
_CHECKED = check_source(POLICY).checked
assert _CHECKED is not None
_COMPILED = compile_policy(_CHECKED, POLICY.encode("utf-8"))
_BAD = [
    b"not json",
    b'{"conversation": 3}',
    b'{"conversation": "x", "time": "2026-11-22T10:00:00Z", "type": "agent.dance"}',
    b"[1, 2]",
    b"   ",
    b'{"conversation": "c1", "time": "2026-11-22T09:00:00Z", "type": "agent.warn", "n": 123456789012345678901234567890}',
]



def _serial(paths: list[str], as_of: int | None, limits: Limits | None = None) -> bytes:
    from escalation.replay import Replayer

    inputs = open_inputs(paths)
    out = io.BytesIO()
    r = Replayer(_COMPILED, as_of, limits=limits) if limits is not None else None
    write_log(replay_records(_COMPILED, inputs, as_of, replayer=r), out)
    return out.getvalue()


def _parallel(paths: list[str], as_of: int | None, jobs: int, limits: Limits | None = None) -> bytes:
    out = io.BytesIO()
    if limits is None:
        replay_parallel(_COMPILED, open_inputs(paths), as_of, jobs, out)
    else:
        replay_parallel(_COMPILED, open_inputs(paths), as_of, jobs, out, limits=limits)
    return out.getvalue()


def _write(tmp: str, records: list[dict[str, object]], bad: list[tuple[int, bytes]], files: int) -> list[str]:
    lines = [json.dumps(r).encode() for r in records]
    for at, junk in bad:
        lines.insert(min(at, len(lines)), junk)
    paths = []
    for k in range(files):
        path = Path(tmp) / f"events-{k}.jsonl"
        path.write_bytes(b"".join(line + b"\n" for line in lines[k::files]))
        paths.append(str(path))
    return paths


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    event_streams(_CHECKED.vocabulary, max_conversations=5, max_events=25, prefer=mentioned(POLICY, _CHECKED.vocabulary)),
    st.lists(st.tuples(st.integers(0, 60), st.sampled_from(_BAD)), max_size=4),
    st.integers(2, 4),
    st.none() | st.integers(0, 10**7),
    st.integers(1, 7),
    st.integers(1, 3),
)
def test_parallel_replay_equals_serial(
    records: list[dict[str, object]], bad: list[tuple[int, bytes]], jobs: int, as_of: int | None, block: int, files: int
) -> None:
    """Any stream, job count, block size (so that blocks end anywhere) and split into files."""
    as_of_us = None if as_of is None else 1795341600000000 + as_of * 1000
    saved = parallel.BLOCK
    parallel.BLOCK = block  # the forked workers inherit it
    try:
        with tempfile.TemporaryDirectory() as tmp:
            paths = _write(tmp, records, bad, files)
            same_log(_parallel(paths, as_of_us, jobs), _serial(paths, as_of_us))
    finally:
        parallel.BLOCK = saved


def test_every_process_gets_work_and_the_log_is_the_serial_one(tmp_path: Path) -> None:
    """A stream long enough for many blocks, with conversations owned by every process."""
    records = []
    for n in range(300):
        c = f"conv-{n}"
        records += [
            {"conversation": c, "time": "2026-11-22T10:00:00Z", "type": "customer.message", "abuse": "insult"},
            {"conversation": c, "time": "2026-11-22T10:00:05Z", "type": "agent.warn"},
            {"conversation": c, "time": "2026-11-22T10:01:00Z", "type": "interaction.end"},
        ]
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    for jobs in (2, 3):
        owners = {owner(json.dumps(r).encode(), 1, jobs) for r in records}
        assert owners == set(range(jobs))
    saved = parallel.BLOCK
    parallel.BLOCK = 64
    try:
        serial = _serial([str(path)], None)
        same_log(_parallel([str(path)], None, 2), serial)
        same_log(_parallel([str(path)], None, 3), serial)
    finally:
        parallel.BLOCK = saved


def test_reaching_the_open_conversation_limit_falls_back_to_a_serial_replay(tmp_path: Path) -> None:
    """No process alone reaches the limit; the serial replay does, so the parallel one must redo it serially."""
    records = [
        {"conversation": f"c{n}", "time": "2026-11-22T10:00:00Z", "type": "customer.message", "abuse": "insult"}
        for n in range(12)
    ]
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    limits = Limits(max_open_conversations=8)
    serial = _serial([str(path)], None, limits)
    assert serial.count(b'"kind":"rejected"') == 4
    same_log(_parallel([str(path)], None, 3, limits), serial)


def test_an_error_in_a_worker_reaches_the_parent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text(
        "".join(
            json.dumps({"conversation": f"c{n}", "time": "2026-11-22T10:00:00Z", "type": "agent.warn"}) + "\n" for n in range(50)
        )
    )

    def broken(record: object) -> bytes:
        raise RuntimeError("the encoder broke")

    monkeypatch.setattr(parallel, "engine_canonical", broken)  # only workers encode with it
    with pytest.raises(ParallelError, match="replay worker 1 failed: RuntimeError: the encoder broke"):
        _parallel([str(path)], None, 2)


def test_a_worker_that_dies_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    path = tmp_path / "events.jsonl"
    path.write_text(
        "".join(
            json.dumps({"conversation": f"c{n}", "time": "2026-11-22T10:00:00Z", "type": "agent.warn"}) + "\n" for n in range(50)
        )
    )
    monkeypatch.setattr(parallel, "engine_canonical", lambda record: os._exit(9))
    with pytest.raises(ParallelError, match="exit code 9"):
        _parallel([str(path)], None, 2)


def test_the_parent_takes_a_smaller_share_and_slots_cover_every_process() -> None:
    assert parent_share(1) == 1000
    assert 300 < parent_share(2) < 500  # the parent also completes the chain
    assert parent_share(8) == 0
    for jobs in (2, 3, 5, 8):
        share = parent_share(jobs)
        seen = {slot(key, jobs, share) for key in range(20000)}
        assert seen == (set(range(jobs)) if share else set(range(1, jobs)))


def test_a_conversation_always_has_one_key() -> None:
    a = b'{"conversation": "c-1", "time": "x", "type": "y"}'
    b = b'{"type": "z", "conversation": "c-1"}'
    c = b'{"conversation":"c-1","type":"z"}'
    d = b'{"conversation": "c\\u002d1", "type": "z"}'  # an escape: decoded
    assert (
        conversation_key(a, 1)
        == conversation_key(b, 99)
        == conversation_key(c, 5)
        == conversation_key(d, 7)
        == zlib.crc32(b"c-1")
    )
    assert conversation_key(b"not json", 7) == 7
    assert conversation_key(b'{"conversation": ""}', 7) == 7
    big = b'{"conversation": "c-1", "n": 123456789012345678901234567890, "conversation": "c-1"}'  # duplicate key, huge int
    assert conversation_key(big, 3) == zlib.crc32(b"c-1")


_KEYS = st.sampled_from(["conversation", "time", "type", "note", "by", "x"])
_VALUES = st.one_of(
    st.text(alphabet=st.characters(codec="utf-8"), max_size=6),
    st.sampled_from(["c-1", "conversation", '"conversation"', "a\\b", "é", '{"conversation": "z"}']),
    st.integers(-5, 10**20),
    st.none(),
    st.dictionaries(_KEYS, st.sampled_from(["c-1", "c-2"]), max_size=2),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(_KEYS, _VALUES), max_size=5), st.booleans(), st.booleans(), st.integers(1, 10**6))
def test_the_fast_path_agrees_with_validation(pairs: list[tuple[str, object]], lead: bool, tight: bool, seq: int) -> None:
    """Whatever the line, one that decodes to an object naming a conversation gets the CRC-32 of that id."""
    if lead:
        pairs = [("conversation", "c-1"), *pairs]
    body = ", ".join(f"{json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}" for k, v in pairs)
    line = ("{" + body + "}").encode("utf-8")
    if tight:
        line = line.replace(b'": ', b'":')
    try:
        conversation = decode_line(line).get("conversation")
    except EventError:
        return  # rejected whichever process handles it
    if isinstance(conversation, str) and conversation:
        assert conversation_key(line, seq) == zlib.crc32(conversation.encode("utf-8"))
    else:
        assert conversation_key(line, seq) == seq


def test_the_command_line_reports_a_dead_worker_without_a_traceback(tmp_path: Path) -> None:
    """A worker killed mid-replay: one sentence, exit 2, no log and no temporary file left."""
    import subprocess
    import sys

    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps({"conversation": f"c{n}", "time": "2026-11-22T10:00:00Z", "type": "agent.warn"}) + "\n" for n in range(50)))
    out = tmp_path / "audit.jsonl"
    script = (
        "import os, sys\n"
        "from escalation.replay import parallel\n"
        "parallel.engine_canonical = lambda record: os._exit(9)\n"
        "from escalation.cli.app import main\n"
        "sys.argv = ['escalation', 'replay', sys.argv[1], sys.argv[2], '--jobs', '2', '-o', sys.argv[3]]\n"
        "main()\n"
    )
    policy = Path(__file__).resolve().parents[3] / "policies" / "three_strikes.esc"
    proc = subprocess.run([sys.executable, "-c", script, str(policy), str(path), str(out)], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "ended unexpectedly (exit code 9)" in proc.stderr and "no audit log was written" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events.jsonl"]


def test_a_line_limit_is_applied_as_in_a_serial_replay(tmp_path: Path) -> None:
    long = {"conversation": "c1", "time": "2026-11-22T10:00:00Z", "type": "agent.warn", "note": "x" * 300}
    lines = [long, {"conversation": "c1", "time": "2026-11-22T10:00:01Z", "type": "agent.warn"}]
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in lines))
    limits = Limits(max_line_bytes=200)
    serial = _serial([str(path)], None, limits)
    assert b"max_line_bytes" in serial
    same_log(_parallel([str(path)], None, 2, limits), serial)


def test_processes_that_read_different_input_are_caught(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Were an input file to change while the workers read it, the parent says so instead of writing a wrong log."""
    import multiprocessing

    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps({"conversation": f"c{n}", "time": "2026-11-22T10:00:00Z", "type": "agent.warn"}) + "\n" for n in range(50)))
    real = parallel.numbered_lines

    def shorter_in_worker_2(inputs: object, limits: Limits) -> object:
        rows = list(real(inputs, limits))
        return iter(rows[:-1] if multiprocessing.current_process().name == "escalation-replay-2" else rows)

    monkeypatch.setattr(parallel, "numbered_lines", shorter_in_worker_2)
    with pytest.raises(ParallelError, match="read different input"):
        _parallel([str(path)], None, 3)


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the workers through /proc (Linux)")
def test_workers_end_when_the_parent_is_killed(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "benchmarks"))
    import gen_events

    events = gen_events.ensure(tmp_path, 60_000, 3_000, 7)
    policy = Path(__file__).resolve().parents[3] / "policies" / "three_strikes.esc"
    script = "import sys\nfrom escalation.cli.app import main\nsys.argv = ['escalation', *sys.argv[1:]]\nmain()\n"
    parent = subprocess.Popen(
        [sys.executable, "-c", script, "replay", str(policy), str(events), "--jobs", "3", "-o", str(tmp_path / "audit.jsonl")],
        stderr=subprocess.DEVNULL,
    )

    def children() -> list[int]:
        out = []
        for task in Path(f"/proc/{parent.pid}/task").glob("*"):
            with contextlib.suppress(OSError):
                out += [int(p) for p in (task / "children").read_text().split()]
        return out

    import contextlib

    deadline = time.monotonic() + 30
    workers: list[int] = []
    while len(workers) < 2 and time.monotonic() < deadline:
        workers = children()
        time.sleep(0.05)
    assert len(workers) == 2, workers
    time.sleep(0.5)  # replaying
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()

    def alive(pid: int) -> bool:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
        except OSError:
            return False
        return state != "Z"

    deadline = time.monotonic() + 30
    while any(alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [p for p in workers if alive(p)]
    for p in left:
        os.kill(p, signal.SIGKILL)
    assert not left, "workers outlived their parent"
