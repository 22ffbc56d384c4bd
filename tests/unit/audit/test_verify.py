"""`escalation verify` against hostile logs, in bounded memory, and holding the options that change verdicts to the auditor's word.

The logs are written by a real replay (rejected records, violations and close records
included). Malformed logs of every kind — a tampered header, records of the wrong shape,
lone surrogate escapes, a line of 1.5 GB without a newline, and whatever the fuzzer makes of
a real log — exit 5 with one sentence and never a traceback. ``verify --policy --events``
compares a fresh replay with the file line by line, and its memory does not grow with the
log. ``--as-of`` and ``--idle-horizon`` are the auditor's: a log made with other values fails,
and values taken from the header on trust are named. The partitioned audit's verifier is
held to the same (a small partitioned audit, made on Dask's local threaded scheduler).
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_tamper import event_lines

from conftest import ROOT, escalation_command
from escalation.cli.app import cli
from helpers.log_compare import json_paths

POLICY = ROOT / "policies" / "three_strikes.esc"
AS_OF = "2026-11-03T00:00:00Z"
#: A huge line: 1.5 GB, made sparse with truncate (no disk is used).
HUGE = 1_500_000_000
#: What a refused huge line may cost, in KiB: the line limit (64 MiB, escalation.audit.chain.MAX_RECORD_BYTES) and the
#: interpreter; a 1.5 GB line cost 1.5 GB and more before.
HUGE_RSS_KB = 200_000
_SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


# ------------------------------------------------------------------ helpers


def forger_canonical(record: Any) -> bytes:
    """The canonical bytes a forger writes, lone surrogates escaped as JSON does (``\\udfff``)."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "backslashreplace")


def rechain(lines: list[bytes]) -> bytes:
    """Recompute every `prev` and `hash`, as a forger who knows the format would (lines that are not JSON stay)."""
    out = []
    prev = "0" * 64
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            out.append(line if line.endswith(b"\n") else line + b"\n")
            continue
        if not isinstance(record, dict):
            out.append(line)
            continue
        record.pop("hash", None)
        record["prev"] = prev
        prev = hashlib.sha256(forger_canonical(record)).hexdigest()
        record["hash"] = prev
        out.append(forger_canonical(record) + b"\n")
    return b"".join(out)


def verify(path: Path, *extra: str) -> tuple[int, str]:
    """`escalation verify` in this process: exit code and standard error; never an exception, never a traceback."""
    result = CliRunner().invoke(cli, ["verify", str(path), *extra])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.stderr, result.stderr
    return result.exit_code, result.stderr


def one_sentence(err: str) -> bool:
    return len(err.strip().splitlines()) == 1 and "Traceback" not in err


_PEAK = (
    "import resource, subprocess, sys\n"
    "proc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)\n"
    "sys.stdout.write(f'{resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss} {proc.returncode}\\n')\n"
    "sys.stdout.write(proc.stderr.decode('utf-8', 'replace'))\n"
)


def peak(*args: str) -> tuple[int, int, str]:
    """Run `escalation ARGS` in a fresh process: (its peak RSS in KiB, its exit code, its standard error)."""
    proc = subprocess.run([sys.executable, "-c", _PEAK, *escalation_command(), *args], capture_output=True, text=True, timeout=900)
    first, _, err = proc.stdout.partition("\n")
    rss, code = first.split()
    return int(rss), int(code), err


def _set(value: Any, path: tuple[Any, ...], new: Any) -> None:
    for step in path[:-1]:
        value = value[step]
    value[path[-1]] = new


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path, bytes]:
    """(policy, events, audit log, its bytes): a real log with rejected records, violations and close records."""
    d = tmp_path_factory.mktemp("verify")
    events = d / "events.jsonl"
    events.write_bytes(event_lines(random.Random(11), 40))
    audit = d / "audit.jsonl"
    result = CliRunner().invoke(cli, ["replay", str(POLICY), str(events), "-o", str(audit), "--as-of", AS_OF])
    assert result.exit_code in (0, 4), result.stderr
    data = audit.read_bytes()
    kinds = {json.loads(line)["kind"] for line in data.splitlines()}
    assert {"header", "decision", "rejected", "close", "summary"} <= kinds, kinds
    return POLICY, events, audit, data


def _records(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in data.splitlines()]


def _lines_of(records: list[dict[str, Any]]) -> list[bytes]:
    return [forger_canonical(r) + b"\n" for r in records]


# ------------------------------------------------------------------ 8. malformed logs: exit 5, one sentence, no traceback

_HEADER_EDITS: dict[str, Callable[[dict[str, Any]], None]] = {
    "as_of a word": lambda h: h.update(as_of="yesterday"),
    "as_of an impossible date": lambda h: h.update(as_of="2026-13-01T00:00:00Z"),
    "as_of before the year 1 in UTC": lambda h: h.update(as_of="0001-01-01T00:00:00+01:00"),
    "as_of not canonical": lambda h: h.update(as_of="2026-11-03T01:00:00+01:00"),
    "as_of a number": lambda h: h.update(as_of=5),
    "as_of a list": lambda h: h.update(as_of=["2026-11-03T00:00:00Z"]),
    "as_of missing": lambda h: h.pop("as_of"),
    "policy a string": lambda h: h.update(policy="three_strikes.esc"),
    "policy null": lambda h: h.update(policy=None),
    "policy without sha256": lambda h: h["policy"].pop("sha256"),
    "policy name a number": lambda h: h["policy"].update(name=1),
    "inputs a number": lambda h: h.update(inputs=5),
    "inputs a dict": lambda h: h.update(inputs={}),
    "inputs of strings": lambda h: h.update(inputs=["events.jsonl"]),
    "input path a number": lambda h: h["inputs"][0].update(path=1),
    "idle_horizon huge": lambda h: h.update(idle_horizon=10**30),
    "idle_horizon negative": lambda h: h.update(idle_horizon=-5),
    "idle_horizon zero": lambda h: h.update(idle_horizon=0),
    "idle_horizon true": lambda h: h.update(idle_horizon=True),
    "idle_horizon a float": lambda h: h.update(idle_horizon=7200.5),
    "idle_horizon a string": lambda h: h.update(idle_horizon="2h"),
}


@pytest.mark.parametrize("edit", list(_HEADER_EDITS), ids=list(_HEADER_EDITS))
def test_a_malformed_header_is_refused_with_one_sentence(made: tuple[Path, Path, Path, bytes], tmp_path: Path, edit: str) -> None:
    """A forger re-chains the log after editing its header: verify, alone or with the inputs, names line 1 and exits 5."""
    policy, events, _, original = made
    records = _records(original)
    _HEADER_EDITS[edit](records[0])
    forged = tmp_path / "forged.jsonl"
    forged.write_bytes(rechain(_lines_of(records)))
    for extra in ((), ("--policy", str(policy), "--events", str(events))):
        code, err = verify(forged, *extra)
        assert code == 5 and one_sentence(err) and err.startswith(f"{forged}:1: "), (extra, err)


_RECORD_EDITS: dict[str, tuple[str, Callable[[dict[str, Any]], None]]] = {
    "seq true": ("decision", lambda r: r.update(seq=True) if r["seq"] == 1 else r.update(seq=r["seq"] + 0.0)),
    "seq a float": ("decision", lambda r: r.update(seq=float(r["seq"]))),
    "conversation a list": ("decision", lambda r: r.update(conversation=[r["conversation"]])),
    "violations of numbers": ("decision", lambda r: r.update(violations=[5])),
    "a violation of another kind": ("decision", lambda r: r.update(violations=[{"kind": ["x"]}])),
    "event a string": ("decision", lambda r: r.update(event="{}")),
    "permitted a string": ("decision", lambda r: r.update(permitted="agent.hang_up")),
    "raw a number": ("rejected", lambda r: r.update(raw=1)),
    "reason missing": ("rejected", lambda r: r.pop("reason")),
    "open a number": ("close", lambda r: r.update(open=5)),
    "open of strings": ("close", lambda r: r.update(open=["c0#1"])),
    "close as_of another time": ("close", lambda r: r.update(as_of="2026-11-04T00:00:00Z")),
    "summary rejected false": ("summary", lambda r: r.update(rejected=False) if r["rejected"] == 0 else r.update(rejected=float(r["rejected"]))),
    "summary events a float": ("summary", lambda r: r.update(events=float(r["events"]))),
    "summary by_kind counts as floats": ("summary", lambda r: r.update(by_kind={k: float(v) for k, v in r["by_kind"].items()})),
    "summary without open_obligations": ("summary", lambda r: r.pop("open_obligations")),
}


@pytest.mark.parametrize("edit", list(_RECORD_EDITS), ids=list(_RECORD_EDITS))
def test_a_record_of_the_wrong_shape_is_refused_at_its_line(made: tuple[Path, Path, Path, bytes], tmp_path: Path, edit: str) -> None:
    """Re-chained records with a field of the wrong JSON type (`true` for 1 included) fail at their line, in one sentence."""
    *_, original = made
    kind, change = _RECORD_EDITS[edit]
    records = _records(original)
    k = next(i for i, r in enumerate(records) if r["kind"] == kind)
    change(records[k])
    forged = tmp_path / "forged.jsonl"
    forged.write_bytes(rechain(_lines_of(records)))
    code, err = verify(forged)
    assert code == 5 and one_sentence(err) and err.startswith(f"{forged}:{k + 1}: "), err


@pytest.mark.parametrize("chained", [False, True], ids=["edited", "re-chained"])
def test_a_lone_surrogate_escape_is_refused_at_its_line(made: tuple[Path, Path, Path, bytes], tmp_path: Path, chained: bool) -> None:
    policy, events, _, original = made
    lines = original.splitlines(keepends=True)
    k = next(i for i, line in enumerate(lines) if b'"kind":"decision"' in line)
    lines[k] = lines[k].replace(b'"conversation":"', b'"conversation":"\\udfff', 1)
    forged = tmp_path / "forged.jsonl"
    forged.write_bytes(rechain(lines) if chained else b"".join(lines))
    for extra in ((), ("--policy", str(policy), "--events", str(events))):
        code, err = verify(forged, *extra)
        assert code == 5 and one_sentence(err) and err.startswith(f"{forged}:{k + 1}: "), err
        assert "surrogate" in err


@pytest.mark.parametrize("start", [b"", b'{"kind":"decision","x":"'], ids=["zero bytes", "an open record"])
def test_a_line_of_1_5_gb_without_a_newline_is_refused_in_bounded_memory(made: tuple[Path, Path, Path, bytes], tmp_path: Path, start: bytes) -> None:
    """A sparse 1.5 GB second line: exit 5 naming line 2, reading at most the line limit of it."""
    *_, original = made
    huge = tmp_path / "huge.jsonl"
    with huge.open("wb") as fh:
        fh.write(original.splitlines(keepends=True)[0] + start)
        fh.truncate(HUGE)
    rss, code, err = peak("verify", str(huge))
    assert code == 5 and one_sentence(err) and err.startswith(f"{huge}:2: "), err
    assert rss < HUGE_RSS_KB, f"peak RSS {rss} KiB for a {HUGE}-byte line"


def test_a_record_longer_than_the_line_limit_is_refused_even_if_the_engine_wrote_it(made: tuple[Path, Path, Path, bytes]) -> None:
    """Known gap: the line limit bounds verify's memory, and a longer record fails even when it is genuine (here with a
    small limit; at the default 64 MiB, a close record of some 400,000 open obligations)."""
    import io

    from escalation.audit import verify_stream
    from escalation.replay import ENGINE

    *_, original = made
    longest = max(len(line) for line in original.splitlines())
    assert verify_stream(io.BytesIO(original), ENGINE, cap=longest).ok
    result = verify_stream(io.BytesIO(original), ENGINE, cap=longest - 1)
    assert not result.ok and f"longer than {longest - 1} bytes" in result.message


def test_replay_refuses_an_idle_horizon_no_header_can_hold(made: tuple[Path, Path, Path, bytes], tmp_path: Path) -> None:
    """An idle horizon beyond the years 0001-9999 is a usage error (it crashed the replay's sweep, or wrote a header
    that verify refuses); the longest one that fits replays and verifies."""
    _, events, _, _ = made
    result = CliRunner().invoke(cli, ["replay", str(POLICY), str(events), "-o", str(tmp_path / "a.jsonl"), "--idle-horizon", "99999999999999999999d"])
    assert result.exit_code == 2 and "--idle-horizon" in result.stderr and not (tmp_path / "a.jsonl").exists()
    log = _replay(tmp_path, events, "longest.jsonl", "--idle-horizon", "315537897600s")
    assert verify(log, "--policy", str(POLICY), "--events", str(events))[0] == 0


# ------------------------------------------------------------------ 8. the fuzzer: any mutation of a real log

_VALUES = st.sampled_from([None, True, False, 0, 1, -1, 10**30, 1.5, 1e308, "", "x", "yesterday", "\udfff", [], [1], {}, {"a": 1}, "0" * 64])
_MUTATIONS = ["flip", "swap", "surrogate", "number", "delete", "duplicate", "truncate"]
_NUMBERS = [b"1" * 5000, b"1e999", b"-0", b"10000000000000000000000000000000", b"1.0", b"NaN"]


def mutate_lines(data: st.DataObject, original: bytes) -> tuple[bytes, bool]:
    """A mutation of a log's bytes, and whether the forger re-chained it (recomputed every `prev` and `hash`)."""
    lines = original.splitlines(keepends=True)
    how = data.draw(st.sampled_from(_MUTATIONS), label="mutation")
    if how == "flip":
        position = data.draw(st.integers(0, len(original) - 1), label="byte")
        damaged = bytearray(original)
        damaged[position] ^= data.draw(st.integers(1, 255), label="mask")
        return bytes(damaged), False
    if how == "truncate":
        return original[: data.draw(st.integers(0, len(original) - 1), label="cut")], False
    k = data.draw(st.one_of(st.just(0), st.just(len(lines) - 1), st.integers(0, len(lines) - 1)), label="line")
    if how == "swap":
        record = json.loads(lines[k])
        path = data.draw(st.sampled_from(list(json_paths(record))), label="field")
        _set(record, path, data.draw(_VALUES, label="value"))
        lines[k] = forger_canonical(record) + b"\n"
    elif how == "surrogate":
        spots = [m.end() for m in re.finditer(rb'":"', lines[k])]
        at = data.draw(st.sampled_from(spots), label="string")
        lines[k] = lines[k][:at] + data.draw(st.sampled_from([b"\\udfff", b"\\ud800", b"\\udc00x"]), label="escape") + lines[k][at:]
    elif how == "number":
        spots = [m.span(1) for m in re.finditer(rb":(-?[0-9]+)[,}\]]", lines[k])]
        if spots:
            a, b = data.draw(st.sampled_from(spots), label="number")
            lines[k] = lines[k][:a] + data.draw(st.sampled_from(_NUMBERS), label="with") + lines[k][b:]
    elif how == "delete":
        del lines[k]
    else:
        lines.insert(k, lines[k])
    chained = data.draw(st.booleans(), label="re-chained")
    return (rechain(lines) if chained else b"".join(lines)), chained


@_SETTINGS
@given(st.data())
def test_verify_of_a_mutated_log_exits_0_or_5_with_one_sentence(made: tuple[Path, Path, Path, bytes], tmp_path: Path, data: st.DataObject) -> None:
    """Exit 0 only for the very bytes of the log; 5 for anything else, in one sentence, never a traceback.

    A mutation the forger re-chained can pass `verify` alone (the chain is no signature), never
    `verify --policy --events` with the auditor's --as-of.
    """
    policy, events, _, original = made
    damaged, chained = mutate_lines(data, original)
    target = tmp_path / "damaged.jsonl"
    target.write_bytes(damaged)
    code, err = verify(target)
    assert code in (0, 5) and one_sentence(err), err
    if damaged == original:
        assert code == 0, err
    elif not chained:
        assert code == 5, err
    code, err = verify(target, "--policy", str(policy), "--events", str(events), "--as-of", AS_OF, "--idle-horizon", "none")
    assert code == (0 if damaged == original else 5) and one_sentence(err), err


# ------------------------------------------------------------------ 9. comparing with a fresh replay in constant memory


def test_verify_against_the_inputs_holds_one_line_at_a_time(tmp_path: Path) -> None:
    """100,000 generated events, a 78 MB log: comparing with a fresh replay costs at most half the log over the chain check.

    Before, the fresh replay's log was built in memory, then split: 2.2 times the log's size.
    """
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import gen_events

    events = gen_events.ensure(tmp_path, 100_000, 2_500, 2026)
    audit = tmp_path / "audit.jsonl"
    result = CliRunner().invoke(cli, ["replay", str(POLICY), str(events), "-o", str(audit)])
    assert result.exit_code == 0, result.stderr
    size_kb = audit.stat().st_size >> 10
    alone, code, err = peak("verify", str(audit))
    assert code == 0, err
    compared, code, err = peak("verify", str(audit), "--policy", str(POLICY), "--events", str(events), "--as-of", "none", "--idle-horizon", "none")
    assert code == 0 and "identical to a fresh replay" in err, err
    assert compared < alone + size_kb // 2, f"verify --policy --events: {compared} KiB peak; the chain check alone {alone} KiB; the log {size_kb} KiB"


def test_a_rechained_forgery_is_named_at_its_first_forged_line(made: tuple[Path, Path, Path, bytes], tmp_path: Path) -> None:
    """A re-chained forgery passes the chain check; the comparison with a fresh replay names its first forged line."""
    policy, events, _, original = made
    records = _records(original)
    k = next(i for i, r in enumerate(records) if r["kind"] == "decision")
    records[k]["fired"] = ["invented"]
    forged = tmp_path / "forged.jsonl"
    forged.write_bytes(rechain(_lines_of(records)))
    code, err = verify(forged, "--policy", str(policy), "--events", str(events), "--as-of", AS_OF, "--idle-horizon", "none")
    assert code == 5 and one_sentence(err) and err.startswith(f"{forged}:{k + 1}: differs from a fresh replay"), err


# ------------------------------------------------------------------ 12. the options that change verdicts are the auditor's


def _replay(tmp_path: Path, events: Path, name: str, *options: str) -> Path:
    out = tmp_path / name
    result = CliRunner().invoke(cli, ["replay", str(POLICY), str(events), "-o", str(out), *options])
    assert result.exit_code in (0, 4), result.stderr
    return out


def test_a_log_made_with_another_as_of_fails_against_the_auditors(made: tuple[Path, Path, Path, bytes], tmp_path: Path) -> None:
    """Regenerated with a later --as-of (more deadlines missed) or none (fewer), a log is a faithful replay of *those*
    options; the auditor who gives the --as-of of record sees it fail, and one who gives none is told what was trusted."""
    policy, events, audit, _ = made
    inputs = ("--policy", str(policy), "--events", str(events))
    later = _replay(tmp_path, events, "later.jsonl", "--as-of", "2026-12-01T00:00:00Z")
    without = _replay(tmp_path, events, "without.jsonl")
    for forged, recorded in ((later, "--as-of 2026-12-01T00:00:00Z"), (without, "no --as-of")):
        for extra in ((), inputs):
            code, err = verify(forged, *extra, "--as-of", AS_OF)
            assert code == 5 and one_sentence(err) and err.startswith(f"{forged}:1: "), err
            assert recorded in err and AS_OF in err, err
        code, err = verify(forged, *inputs)  # nothing given: the header's value is used, and named as trusted
        assert code == 0 and f"note: {recorded} and no --idle-horizon were taken on trust from the log's header" in err, err
    code, err = verify(audit, *inputs, "--as-of", "2026-11-03T01:00:00+01:00", "--idle-horizon", "none")  # the same instant
    assert code == 0 and one_sentence(err) and "note" not in err, err
    code, err = verify(audit, *inputs, "--as-of", "none")
    assert code == 5 and one_sentence(err) and "--as-of none" in err, err
    code, err = verify(audit, *inputs, "--idle-horizon", "none")
    assert code == 0 and f"note: --as-of {AS_OF} was taken on trust from the log's header; pass --as-of" in err, err


def test_a_log_made_with_another_idle_horizon_fails_against_the_auditors(made: tuple[Path, Path, Path, bytes], tmp_path: Path) -> None:
    policy, events, _, _ = made
    inputs = ("--policy", str(policy), "--events", str(events), "--as-of", AS_OF)
    log = _replay(tmp_path, events, "horizon.jsonl", "--as-of", AS_OF, "--idle-horizon", "2h")
    assert verify(log, *inputs, "--idle-horizon", "120m")[0] == 0  # the same horizon, said otherwise
    for other in ("3h", "none", "7199s"):
        code, err = verify(log, *inputs, "--idle-horizon", other)
        assert code == 5 and one_sentence(err) and "--idle-horizon 2h" in err, (other, err)
    code, err = verify(log, *inputs)
    assert code == 0 and "note: --idle-horizon 2h was taken on trust from the log's header" in err, err
    without = _replay(tmp_path, events, "no-horizon.jsonl", "--as-of", AS_OF)
    code, err = verify(without, *inputs, "--idle-horizon", "2h")
    assert code == 5 and one_sentence(err) and "no --idle-horizon" in err, err


def test_verify_refuses_options_that_are_not_values(made: tuple[Path, Path, Path, bytes]) -> None:
    *_, audit, _ = made
    for option, value in (("--as-of", "yesterday"), ("--as-of", "0001-01-01T00:00:00+01:00"), ("--idle-horizon", "0h"), ("--idle-horizon", "2 weeks")):
        code, err = verify(audit, option, value)
        assert code == 2 and option in err, err


# ------------------------------------------------------------------ the partitioned audit's verifier


@pytest.fixture(scope="module")
def partitioned(made: tuple[Path, Path, Path, bytes], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A partitioned audit of the same events in 2 parts, made on Dask's local threaded scheduler (no cluster)."""
    pytest.importorskip("dask", reason="Dask is not installed: pip install -e '.[dask]'")
    from escalation.lang.units import parse_time
    from escalation.replay.dask import replay_distributed

    _, events, _, _ = made
    out = tmp_path_factory.mktemp("partitioned") / "audit"
    replay_distributed(str(POLICY), [str(events)], str(out), scheduler=None, as_of=parse_time(AS_OF), partitions=2)
    return out


def _copy(folder: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy"
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(folder, target)
    return target


def _meaning(data: bytes) -> str | None:
    """The manifest's content, whatever its layout (None when it is not JSON)."""
    try:
        return json.dumps(json.loads(data), sort_keys=True)
    except (ValueError, RecursionError):
        return None


_MANIFEST_EDITS: dict[str, Callable[[bytes], bytes]] = {
    "not JSON": lambda m: m[: len(m) // 2],
    "nested 100,000 deep": lambda m: b"[" * 100_000 + b"]" * 100_000,
    "a JSON list": lambda m: b"[]",
    "NaN": lambda m: m.replace(b'"records": ', b'"records": NaN, "x": ', 1),
    "engine with a lone surrogate": lambda m: m.replace(b'"engine": "', b'"engine": "\\udfff', 1),
    "format with a lone surrogate": lambda m: m.replace(b'"format": "', b'"format": "\\ud800', 1),
    "a final hash not in ASCII": lambda m: re.sub(rb'"final_hash": "[0-9a-f]{64}"', '"final_hash": "{}"'.format("é" * 64).encode(), m, count=1),
    "root hash a number": lambda m: re.sub(rb'"root_hash": "[0-9a-f]{64}"', b'"root_hash": 5', m),
    "partitions a dict": lambda m: _edit_json(m, lambda d: d.update(partitions={})),
    "a part's records true": lambda m: _edit_json(m, lambda d: d["partitions"][0].update(records=True)),
    "records beyond counting": lambda m: _edit_json(m, lambda d: d["summary"].update(records=10**30)),
    "summary rejected as a boolean": lambda m: _edit_json(m, lambda d: d["summary"].update(rejected=bool(d["summary"]["rejected"]))),
    "summary violations as a float": lambda m: _edit_json(m, lambda d: d["summary"].update(violations=float(d["summary"]["violations"]))),
    "as_of a word": lambda m: _edit_json(m, lambda d: d.update(as_of="yesterday")),
    "policy a string": lambda m: _edit_json(m, lambda d: d.update(policy="x")),
    "inputs a number": lambda m: _edit_json(m, lambda d: d.update(inputs=5)),
}


def _edit_json(data: bytes, edit: Callable[[dict[str, Any]], None]) -> bytes:
    manifest = json.loads(data)
    edit(manifest)
    return json.dumps(manifest, indent=2, sort_keys=True).encode()


@pytest.mark.parametrize("edit", list(_MANIFEST_EDITS), ids=list(_MANIFEST_EDITS))
def test_a_malformed_manifest_is_refused_with_one_sentence(made: tuple[Path, Path, Path, bytes], partitioned: Path, tmp_path: Path, edit: str) -> None:
    policy, events, _, _ = made
    copy = _copy(partitioned, tmp_path)
    manifest = copy / "manifest.json"
    manifest.write_bytes(_MANIFEST_EDITS[edit](manifest.read_bytes()))
    for extra in ((), ("--policy", str(policy), "--events", str(events))):
        code, err = verify(copy, *extra)
        assert code == 5 and one_sentence(err) and err.startswith(f"{manifest}: "), (extra, err)


@pytest.mark.parametrize("where", ["manifest.json", "part-00001.jsonl"])
def test_a_huge_manifest_or_part_line_is_refused_in_bounded_memory(partitioned: Path, tmp_path: Path, where: str) -> None:
    copy = _copy(partitioned, tmp_path)
    target = copy / where
    with target.open("r+b") as fh:  # the manifest grows to 1.5 GB; the part's summary line goes on for 1.5 GB
        if where.endswith(".jsonl"):
            fh.truncate(target.stat().st_size - 1)  # its last LF
        fh.truncate(HUGE)
    rss, code, err = peak("verify", str(copy))
    assert code == 5 and one_sentence(err) and err.startswith(str(target)), err
    assert rss < HUGE_RSS_KB, f"peak RSS {rss} KiB for a {HUGE}-byte {where}"


def _consistent(folder: Path, part: Path) -> None:
    """Make the manifest match a re-chained part: its records, final hash and SHA-256, and the root hash."""
    from escalation.replay.dask import root_hash

    manifest = json.loads((folder / "manifest.json").read_bytes())
    data = part.read_bytes()
    lines = data.splitlines()
    entry = next(p for p in manifest["partitions"] if p["file"] == part.name)
    try:
        final = json.loads(lines[-1])["hash"] if lines else "0" * 64
    except (ValueError, KeyError, TypeError):
        return
    entry.update(records=len(lines), final_hash=final, sha256=hashlib.sha256(data).hexdigest())
    manifest["root_hash"] = root_hash(p["final_hash"] for p in manifest["partitions"])
    (folder / "manifest.json").write_bytes(json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False).encode())


def mutate_manifest(data: st.DataObject, original: bytes) -> bytes:
    how = data.draw(st.sampled_from(["flip", "swap", "surrogate", "number", "delete", "duplicate", "truncate"]), label="manifest mutation")
    if how == "flip":
        position = data.draw(st.integers(0, len(original) - 1), label="byte")
        damaged = bytearray(original)
        damaged[position] ^= data.draw(st.integers(1, 255), label="mask")
        return bytes(damaged)
    if how == "truncate":
        return original[: data.draw(st.integers(0, len(original) - 1), label="cut")]
    if how == "swap":
        manifest = json.loads(original)
        path = data.draw(st.sampled_from(list(json_paths(manifest))), label="field")
        _set(manifest, path, data.draw(_VALUES, label="value"))
        return json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False).encode("utf-8", "backslashreplace")
    if how == "surrogate":
        at = data.draw(st.sampled_from([m.end() for m in re.finditer(rb'": "', original)]), label="string")
        return original[:at] + b"\\udfff" + original[at:]
    if how == "number":
        spots = [m.span(1) for m in re.finditer(rb": (-?[0-9]+)", original)]
        a, b = data.draw(st.sampled_from(spots), label="number")
        return original[:a] + data.draw(st.sampled_from(_NUMBERS), label="with") + original[b:]
    lines = original.splitlines(keepends=True)
    k = data.draw(st.integers(0, len(lines) - 1), label="line")
    if how == "delete":
        del lines[k]
    else:
        lines.insert(k, lines[k])
    return b"".join(lines)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.data())
def test_verify_of_a_mutated_partitioned_audit_exits_0_or_5_with_one_sentence(
    made: tuple[Path, Path, Path, bytes], partitioned: Path, tmp_path: Path, data: st.DataObject
) -> None:
    """Mutate the manifest or a part (re-chained or not, with the manifest made to match or not): exit 0 only when
    nothing that means anything changed, else 5 in one sentence; with the inputs, 0 only for the very parts."""
    policy, events, _, _ = made
    copy = _copy(partitioned, tmp_path)
    manifest = copy / "manifest.json"
    original_manifest = manifest.read_bytes()
    parts = sorted(copy.glob("part-*.jsonl"))
    originals = {p.name: p.read_bytes() for p in parts}
    chained = consistent = False
    if data.draw(st.booleans(), label="the manifest"):
        manifest.write_bytes(mutate_manifest(data, original_manifest))
    else:
        part = data.draw(st.sampled_from(parts), label="part")
        damaged, chained = mutate_lines(data, originals[part.name])
        part.write_bytes(damaged)
        if chained and data.draw(st.booleans(), label="manifest made to match"):
            _consistent(copy, part)
            consistent = True
    parts_same = all(p.read_bytes() == originals[p.name] for p in parts)
    manifest_same = _meaning(manifest.read_bytes()) is not None and _meaning(manifest.read_bytes()) == _meaning(original_manifest)
    code, err = verify(copy)
    assert code in (0, 5) and one_sentence(err), err
    if parts_same and manifest_same:
        assert code == 0, err
    elif not consistent:
        assert code == 5, err
    code, err = verify(copy, "--policy", str(policy), "--events", str(events), "--as-of", AS_OF, "--idle-horizon", "none")
    assert code == (0 if parts_same and manifest_same else 5) and one_sentence(err), err


def test_the_partitioned_audit_is_held_to_the_auditors_as_of(made: tuple[Path, Path, Path, bytes], partitioned: Path) -> None:
    policy, events, _, _ = made
    inputs = ("--policy", str(policy), "--events", str(events))
    code, err = verify(partitioned, *inputs, "--as-of", "2026-12-01T00:00:00Z")
    assert code == 5 and one_sentence(err) and f"--as-of {AS_OF}" in err, err
    code, err = verify(partitioned, *inputs, "--idle-horizon", "2h")
    assert code == 5 and one_sentence(err) and "no --idle-horizon" in err, err
    code, err = verify(partitioned, *inputs)
    assert code == 0 and f"note: --as-of {AS_OF} and no --idle-horizon were taken on trust" in err, err
    code, err = verify(partitioned, *inputs, "--as-of", AS_OF, "--idle-horizon", "none")
    assert code == 0 and one_sentence(err), err
