"""Crash safety: a replay killed at any moment leaves nothing at its `-o` path, or the previous file untouched.

Real `escalation replay ... -o OUT` processes replay a generated input of 200,000 lines
and are killed with SIGKILL at seeded random moments — during start-up, once the log
being written has reached a random size, and (on a smaller input) anywhere up to the
end of the run, the final rename included. OUT must then be absent (or byte-identical to what was
there before), and only clearly named temporary files may remain beside it. SIGINT
(Ctrl-C) must clean up after itself. A complete run afterwards still writes a whole log.
"""

from __future__ import annotations

import io
import json
import os
import random
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import ROOT, escalation_command
from escalation.audit import verify_stream
from escalation.replay import ENGINE

POLICY = ROOT / "policies" / "three_strikes.esc"
LINES = 200_000
PREVIOUS = b'{"kind":"header","note":"the previous audit log, which a killed replay must leave alone"}\n'
#: What a killed replay may leave beside its output: its own temporary log, or a spooled standard input.
LEFTOVER = re.compile(r"\.escalation-.+\.tmp|escalation-stdin-.+\.jsonl")

_TYPES = [
    '"type":"customer.message","abuse":"insult"',
    '"type":"customer.message","abuse":"none"',
    '"type":"agent.warn"',
    '"type":"customer.requests_supervisor"',
    '"type":"agent.escalate"',
    '"type":"agent.hang_up"',
    '"type":"interaction.end"',
]


def generate(path: Path, lines: int, seed: int = 11) -> None:
    """``lines`` seeded events over 5,000 interleaved conversations, times never going backwards."""
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as fh:
        for i in range(lines):
            second = i // 50
            stamp = f"2026-11-22T{10 + second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d}Z"
            fh.write(f'{{"conversation":"c{rng.randrange(5_000)}","time":"{stamp}",{rng.choice(_TYPES)}}}\n')


@pytest.fixture(scope="module")
def big_input(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("crash-input") / "events.jsonl"
    generate(path, LINES)
    return path


def start(out: Path, events: Path | str, stdin: bytes | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*escalation_command(), "replay", str(POLICY), str(events), "-o", str(out)],
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def leftovers(directory: Path, out: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p != out)


def wait_for_temp_file(directory: Path, proc: subprocess.Popen[bytes], timeout: float = 120) -> bool:
    """Wait until the replay has created its temporary log (it is writing); False if it ended first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(LEFTOVER.fullmatch(p.name) for p in directory.iterdir()):
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.005)
    raise AssertionError("the replay never created its temporary log")


def is_whole_log(data: bytes) -> bool:
    lines = data.splitlines()
    return bool(lines) and json.loads(lines[0])["kind"] == "header" and json.loads(lines[-1])["kind"] == "summary" and data.endswith(b"\n")


def temp_size(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.iterdir() if p.name.startswith(".escalation-"))


def kill_when_written(directory: Path, proc: subprocess.Popen[bytes], written: int) -> None:
    """SIGKILL the replay once its temporary log holds ``written`` bytes (or at once if it has ended)."""
    while proc.poll() is None and temp_size(directory) < written:
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)


def check_after_kill(proc: subprocess.Popen[bytes], out: Path, previous: bytes | None) -> list[str]:
    """OUT is absent (or as before), or — killed after the rename — a whole log that verifies; only named temporary files remain."""
    assert proc.returncode in (0, -signal.SIGKILL)
    current = out.read_bytes() if out.exists() else None
    if current != previous:
        assert current is not None and verify_stream(io.BytesIO(current), ENGINE).ok, "a partial log at the output path"
    left = leftovers(out.parent, out)
    assert all(LEFTOVER.fullmatch(name) for name in left), left
    return left


def clean(directory: Path, left: list[str]) -> None:
    """Remove what the killed replays left (up to tens of megabytes each)."""
    for name in left:
        (directory / name).unlink()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_replay_killed_while_writing_leaves_no_output(big_input: Path, tmp_path: Path, seed: int) -> None:
    """Killed once its temporary log holds a seeded random number of bytes, up to about a third of the whole log."""
    out = tmp_path / "audit.jsonl"
    proc = start(out, big_input)
    kill_when_written(tmp_path, proc, random.Random(seed).randrange(0, 50_000_000))
    left = check_after_kill(proc, out, None)
    print(f"seed {seed}: left beside the output: {left} ({temp_size(tmp_path)} bytes)")
    clean(tmp_path, left)


def test_a_replay_killed_during_start_up_leaves_no_output(big_input: Path, tmp_path: Path) -> None:
    out = tmp_path / "audit.jsonl"
    proc = start(out, big_input)
    time.sleep(random.Random(4).uniform(0.0, 0.5))  # importing, loading the policy, digesting the input
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    clean(tmp_path, check_after_kill(proc, out, None))


@pytest.mark.parametrize("seed", [5, 6])
def test_a_replay_killed_while_writing_leaves_the_previous_file_untouched(big_input: Path, tmp_path: Path, seed: int) -> None:
    out = tmp_path / "audit.jsonl"
    out.write_bytes(PREVIOUS)
    proc = start(out, big_input)
    kill_when_written(tmp_path, proc, random.Random(seed).randrange(0, 50_000_000))
    clean(tmp_path, check_after_kill(proc, out, PREVIOUS))


@pytest.mark.parametrize("seed", [7, 8, 9])
def test_a_replay_killed_at_any_moment_up_to_its_end_leaves_no_output_or_a_whole_log(tmp_path: Path, seed: int) -> None:
    """A smaller input, killed anywhere between start and a little past a complete run's duration (the rename included)."""
    events = tmp_path / "events.jsonl"
    generate(events, 20_000, seed)
    (tmp_path / "full").mkdir()
    began = time.monotonic()
    full = start(tmp_path / "full" / "audit.jsonl", events)
    _, err = full.communicate(timeout=300)
    took = time.monotonic() - began
    assert full.returncode == 0, err
    assert is_whole_log((tmp_path / "full" / "audit.jsonl").read_bytes())
    (tmp_path / "killed").mkdir()
    out = tmp_path / "killed" / "audit.jsonl"
    out.write_bytes(PREVIOUS)
    proc = start(out, events)
    time.sleep(random.Random(seed).uniform(0.0, took * 1.1))
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    check_after_kill(proc, out, PREVIOUS)


def test_stale_temporary_files_do_not_stop_a_later_replay(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    generate(events, 2_000)
    out = tmp_path / "audit.jsonl"
    for _ in range(2):  # killed as soon as each is writing
        proc = start(out, events)
        wait_for_temp_file(tmp_path, proc)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
    stale = [name for name in leftovers(tmp_path, out) if name != events.name]
    proc = start(out, events)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert is_whole_log(out.read_bytes())
    assert all(LEFTOVER.fullmatch(name) for name in stale), stale


def test_a_replay_from_standard_input_killed_while_writing_leaves_no_output(big_input: Path, tmp_path: Path) -> None:
    data = big_input.read_bytes()
    out = tmp_path / "audit.jsonl"
    proc = start(out, "-", stdin=data)
    assert proc.stdin is not None
    proc.stdin.write(data)
    proc.stdin.close()
    proc.stdin = None
    kill_when_written(tmp_path, proc, random.Random(10).randrange(0, 20_000_000))
    left = check_after_kill(proc, out, None)
    print(f"standard input: left beside the output: {left}")
    assert not any(name.startswith("escalation-stdin-") for name in left)  # the copy of standard input has no name: nothing stays
    clean(tmp_path, left)


def _interrupt(out: Path, events: Path) -> tuple[int, bytes]:
    """Start a replay over a previous OUT, wait until it writes, send SIGINT (Ctrl-C); its exit code and stderr."""
    out.write_bytes(PREVIOUS)
    proc = start(out, events)
    assert wait_for_temp_file(out.parent, proc)
    time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    return proc.returncode, err


def test_an_interrupted_replay_cleans_up_after_itself(big_input: Path, tmp_path: Path) -> None:
    out = tmp_path / "audit.jsonl"
    code, err = _interrupt(out, big_input)
    assert code != 0 and b"Traceback" not in err
    assert out.read_bytes() == PREVIOUS
    assert leftovers(tmp_path, out) == []


def test_an_interrupted_replay_exits_130_and_says_so(big_input: Path, tmp_path: Path) -> None:
    code, err = _interrupt(tmp_path / "audit.jsonl", big_input)
    assert code == 130 and b"interrupted" in err, (code, err)


def test_the_output_is_renamed_into_place_only_when_whole(big_input: Path, tmp_path: Path) -> None:
    """While a replay runs, OUT keeps its previous bytes; the temporary log sits beside it, in the same folder."""
    out = tmp_path / "audit.jsonl"
    out.write_bytes(PREVIOUS)
    proc = start(out, big_input)
    try:
        assert wait_for_temp_file(tmp_path, proc)
        temp = [p for p in tmp_path.iterdir() if LEFTOVER.fullmatch(p.name)]
        assert len(temp) == 1 and temp[0].parent == out.parent
        for _ in range(5):
            assert out.read_bytes() == PREVIOUS
            time.sleep(0.05)
    finally:
        proc.kill()
        proc.communicate(timeout=60)
    assert os.path.exists(out)
