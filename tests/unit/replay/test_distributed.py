"""Distributed replay on Dask: the partitioned audit holds the decisions of a serial replay, and verifies.

One `dask.distributed.LocalCluster` (2 worker processes, 1 thread each) serves the whole
module. The module is skipped only when Dask is not installed (`pip install -e '.[dask]'`).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("distributed", reason="Dask is not installed: pip install -e '.[dask]' to run the distributed replay tests")

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from escalation import check_source
from escalation.audit import MANIFEST, canonical
from escalation.compile.lower import compile_policy
from escalation.lang.units import parse_time
from escalation.replay import ENGINE, InputError, open_inputs, replay_records
from escalation.replay.dask import (
    DistributedError,
    compare_manifest,
    decisions_by_seq,
    is_manifest,
    iter_records,
    part_name,
    replay_distributed,
    root_hash,
    verify_manifest,
)
from escalation.replay.partition import partition_of
from helpers.policy_strategies import event_streams, mentioned

ROOT = Path(__file__).resolve().parents[3]
POLICY_PATH = str(ROOT / "policies" / "three_strikes.esc")
POLICY = Path(POLICY_PATH).read_text(encoding="utf-8")
_CHECKED = check_source(POLICY).checked
assert _CHECKED is not None
_COMPILED = compile_policy(_CHECKED, POLICY.encode("utf-8"))
AS_OF = parse_time("2026-11-02T09:00:00Z")
_BAD = [b"not json", b'{"conversation": 3}', b'{"conversation": "x", "time": "2026-11-22T10:00:00Z", "type": "agent.dance"}', b"[1, 2]", b"   ", b"\xff\xfe"]


def _generate() -> Any:
    spec = importlib.util.spec_from_file_location("escalation_examples_generate", ROOT / "examples" / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module.generate


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    from dask.distributed import LocalCluster

    with LocalCluster(processes=True, n_workers=2, threads_per_worker=1, dashboard_address=None) as local:
        yield local.scheduler_address


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """A generated stream (with malformed records) over three shards, with blank lines and CRLF endings mixed in."""
    lines = [line.encode("utf-8") for line in _generate()(conversations=80, seed=11, bad=8, spread_s=900)]
    folder = tmp_path_factory.mktemp("shards")
    thirds = [lines[: len(lines) // 3], lines[len(lines) // 3 : 2 * len(lines) // 3], lines[2 * len(lines) // 3 :]]
    paths = []
    for k, part in enumerate(thirds):
        body = b""
        for i, line in enumerate(part):
            body += line + (b"\r\n" if i % 7 == 3 else b"\n")
            if i % 50 == 10:
                body += b"\n \t\n"  # blank lines: counted in line numbers, never in seq
        if k == 1:
            body = body.rstrip(b"\n")  # no final newline
        path = folder / f"shard-{k}.jsonl"
        path.write_bytes(body)
        paths.append(str(path))
    return paths


@pytest.fixture(scope="module")
def audit(cluster: str, shards: list[str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("audit") / "out"
    # small blocks, so that every shard is read by several tasks
    manifest = replay_distributed(POLICY_PATH, shards, str(out), scheduler=cluster, as_of=AS_OF, partitions=3, block_bytes=4096)
    assert Path(manifest.path) == out.absolute()
    return out


def _serial(paths: list[str], as_of: int | None) -> list[dict[str, Any]]:
    """A serial replay's records, as they read back from JSON (tuples become lists)."""
    return [json.loads(canonical(r)) for r in replay_records(_COMPILED, open_inputs(paths), as_of)]


def _closes(records: list[dict[str, Any]]) -> Counter[bytes]:
    return Counter(canonical({k: v for k, v in r.items() if k not in ("prev", "hash")}) for r in records if r["kind"] == "close")


def _by_seq(records: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    return {r["seq"]: r for r in records if r["kind"] in ("decision", "rejected")}


def _summary(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in ("kind", "prev", "hash")}


def _copy(audit: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(audit, target)
    return target


def test_the_distributed_audit_holds_the_serial_decisions(audit: Path, shards: list[str]) -> None:
    serial = _serial(shards, AS_OF)
    expected = _by_seq(serial)
    assert len(expected) > 1000 and any(r["kind"] == "rejected" for r in expected.values())
    assert decisions_by_seq(audit) == expected
    parts = [r for _, r in iter_records(audit)]
    assert _closes(parts) == _closes(serial) and _closes(serial)
    manifest = json.loads((audit / MANIFEST).read_text(encoding="utf-8"))
    assert manifest["summary"] == _summary(serial[-1])
    assert manifest["inputs"] == [{"path": p, "sha256": hashlib.sha256(Path(p).read_bytes()).hexdigest()} for p in shards]
    assert manifest["as_of"] == "2026-11-02T09:00:00Z"


def test_every_part_is_an_audit_log_of_one_partition(audit: Path) -> None:
    manifest = json.loads((audit / MANIFEST).read_text(encoding="utf-8"))
    assert [p["file"] for p in manifest["partitions"]] == [part_name(i) for i in range(3)]
    assert manifest["root_hash"] == root_hash(p["final_hash"] for p in manifest["partitions"])
    for index, entry in enumerate(manifest["partitions"]):
        data = (audit / entry["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
        records = [json.loads(line) for line in data.splitlines()]
        assert len(records) == entry["records"] and records[-1]["hash"] == entry["final_hash"]
        header = records[0]
        assert header["kind"] == "header" and header["partition"] == {"index": index, "count": 3}
        assert header["inputs"] == manifest["inputs"] and header["policy"] == manifest["policy"]
        seqs = [r["seq"] for r in records if r["kind"] in ("decision", "rejected")]
        assert seqs == sorted(seqs) and seqs
        for r in records:
            if r["kind"] == "decision":
                assert partition_of(json.dumps(r["event"]).encode(), r["seq"], 3) == index
        assert records[-1]["kind"] == "summary"


def test_the_audit_is_byte_identical_to_an_in_process_partitioned_replay(audit: Path, shards: list[str]) -> None:
    assert verify_manifest(audit, ENGINE).ok
    result = compare_manifest(audit, _COMPILED, open_inputs(shards))
    assert result.ok, result.message


def test_verify_accepts_the_folder_and_the_manifest_file(audit: Path) -> None:
    for path in (audit, audit / MANIFEST):
        result = verify_manifest(path, ENGINE)
        assert result.ok, result.message
        assert result.summary is not None and result.summary["records"] > 1000
        assert is_manifest(path)
    assert not is_manifest(audit / part_name(0))


def test_verify_names_the_first_bad_part_and_line(audit: Path, tmp_path: Path) -> None:
    copy = _copy(audit, tmp_path)
    part = copy / part_name(1)
    lines = part.read_bytes().split(b"\n")
    record = json.loads(lines[4])
    record["source"] = "elsewhere.jsonl:1"  # still canonical JSON: only the hash can tell
    lines[4] = canonical(record)
    part.write_bytes(b"\n".join(lines))
    result = verify_manifest(copy, ENGINE)
    assert not result.ok
    assert result.line == 5 and result.message.startswith(f"{copy / part_name(1)}:5: ")


def test_verify_rejects_a_removed_part(audit: Path, tmp_path: Path) -> None:
    copy = _copy(audit, tmp_path)
    (copy / part_name(2)).unlink()
    result = verify_manifest(copy, ENGINE)
    assert not result.ok and result.message == f"{copy / part_name(2)}: the part is missing"


def test_verify_rejects_a_truncated_part(audit: Path, tmp_path: Path) -> None:
    copy = _copy(audit, tmp_path)
    part = copy / part_name(0)
    lines = part.read_bytes().splitlines(keepends=True)
    part.write_bytes(b"".join(lines[:-1]))
    result = verify_manifest(copy, ENGINE)
    assert not result.ok and result.message.startswith(str(copy / part_name(0))) and "summary" in result.message


def _edit_manifest(folder: Path, edit: Any) -> None:
    manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    edit(manifest)
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")


def test_verify_rejects_an_edited_manifest(audit: Path, tmp_path: Path) -> None:
    def fewer_violations(m: dict[str, Any]) -> None:
        m["summary"]["violations"] -= 1

    def other_root(m: dict[str, Any]) -> None:
        m["root_hash"] = "0" * 64

    def other_final_hash(m: dict[str, Any]) -> None:
        m["partitions"][0]["final_hash"] = "1" * 64
        m["root_hash"] = root_hash(p["final_hash"] for p in m["partitions"])

    def dropped_part(m: dict[str, Any]) -> None:  # a consistent manifest without the last part
        m["partitions"].pop()
        m["root_hash"] = root_hash(p["final_hash"] for p in m["partitions"])

    def other_policy(m: dict[str, Any]) -> None:
        m["policy"]["version"] = "1999.1"

    expected = {
        fewer_violations: "summary",
        other_root: "root_hash",
        other_final_hash: "final hash",
        dropped_part: "partition",
        other_policy: "policy",
    }
    for n, (edit, words) in enumerate(expected.items()):
        copy = tmp_path / f"c{n}"
        shutil.copytree(audit, copy)
        _edit_manifest(copy, edit)
        result = verify_manifest(copy, ENGINE)
        assert not result.ok, edit.__name__
        assert words in result.message, (edit.__name__, result.message)


def test_verify_refuses_an_audit_of_another_engine(audit: Path) -> None:
    result = verify_manifest(audit, "escalation 9.9.9")
    assert not result.ok and "escalation 9.9.9" in result.message


def test_compare_finds_a_consistently_forged_part(audit: Path, shards: list[str], tmp_path: Path) -> None:
    """A part rewritten with a fresh chain (and a manifest to match) passes verify, but not a fresh replay."""
    from escalation.audit import AuditWriter

    copy = _copy(audit, tmp_path)
    part = copy / part_name(0)
    records = [json.loads(line) for line in part.read_bytes().splitlines()]
    victim = next(i for i, r in enumerate(records) if r["kind"] == "decision" and r["violations"])
    lost = Counter(v["kind"] for v in records[victim]["violations"])
    records[victim]["violations"] = []
    for summary in (records[-1],):
        summary["violations"] -= sum(lost.values())
        for kind, n in lost.items():
            summary["by_kind"][kind] -= n
    with part.open("wb") as fh:
        writer = AuditWriter(fh)
        for r in records:
            del r["prev"], r["hash"]
            writer.write(r)

    def match(m: dict[str, Any]) -> None:
        data = part.read_bytes()
        m["partitions"][0].update(sha256=hashlib.sha256(data).hexdigest(), final_hash=writer.prev)
        m["root_hash"] = root_hash(p["final_hash"] for p in m["partitions"])
        m["summary"]["violations"] -= sum(lost.values())
        for kind, n in lost.items():
            m["summary"]["by_kind"][kind] -= n

    _edit_manifest(copy, match)
    assert verify_manifest(copy, ENGINE).ok
    result = compare_manifest(copy, _COMPILED, open_inputs(shards))
    assert not result.ok and result.line == victim + 1
    assert result.message.startswith(f"{copy / part_name(0)}:{victim + 1}: ")


def test_a_failed_replay_leaves_nothing_and_a_second_one_replaces_the_first(cluster: str, shards: list[str], tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(InputError, match=r"missing\.jsonl"):
        replay_distributed(POLICY_PATH, [shards[0], str(tmp_path / "missing.jsonl")], str(out), scheduler=cluster)
    assert list(tmp_path.iterdir()) == []
    first = replay_distributed(POLICY_PATH, shards[:1], str(out), scheduler=cluster, partitions=2)
    second = replay_distributed(POLICY_PATH, shards[:2], str(out), scheduler=cluster, partitions=2)
    assert first.root_hash != second.root_hash
    assert verify_manifest(out, ENGINE).ok
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(DistributedError, match="not a partitioned audit"):
        replay_distributed(POLICY_PATH, shards[:1], str(foreign), scheduler=cluster)
    assert (foreign / "notes.txt").read_text(encoding="utf-8") == "mine"


def test_an_empty_input_gives_headers_and_summaries(cluster: str, tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    manifest = replay_distributed(POLICY_PATH, [str(empty)], str(tmp_path / "out"), scheduler=cluster, partitions=2)
    assert manifest.summary["records"] == 0
    assert verify_manifest(tmp_path / "out", ENGINE).ok
    assert [r["kind"] for _, r in iter_records(tmp_path / "out")] == ["header", "summary", "header", "summary"]


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    event_streams(_CHECKED.vocabulary, max_conversations=4, max_events=25, prefer=mentioned(POLICY, _CHECKED.vocabulary)),
    st.lists(st.tuples(st.integers(0, 100), st.sampled_from(_BAD)), max_size=4),
    st.integers(0, 100),
    st.integers(1, 4),
    st.none() | st.integers(0, 10**7),
)
def test_distributed_decisions_equal_serial_decisions(
    cluster: str, records: list[dict[str, object]], bad: list[tuple[int, bytes]], cut: int, partitions: int, as_of: int | None
) -> None:
    lines = [json.dumps(r).encode() for r in records]
    for at, junk in bad:
        lines.insert(min(at, len(lines)), junk)
    cut = min(cut, len(lines))
    as_of_us = None if as_of is None else 1795341600000000 + as_of * 1000
    with tempfile.TemporaryDirectory() as tmp:
        paths = [str(Path(tmp) / "a.jsonl"), str(Path(tmp) / "b.jsonl")]
        Path(paths[0]).write_bytes(b"".join(line + b"\n" for line in lines[:cut]))
        Path(paths[1]).write_bytes(b"".join(line + b"\n" for line in lines[cut:]))
        serial = _serial(paths, as_of_us)
        out = Path(tmp) / "out"
        manifest = replay_distributed(POLICY_PATH, paths, str(out), scheduler=cluster, as_of=as_of_us, partitions=partitions, block_bytes=256)
        assert decisions_by_seq(out) == _by_seq(serial)
        assert _closes([r for _, r in iter_records(out)]) == _closes(serial)
        assert manifest.summary == _summary(serial[-1])
        result = verify_manifest(out, ENGINE)
        assert result.ok, result.message


def test_the_command_line_replays_on_dask_and_verifies_the_manifest(tmp_path: Path) -> None:
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[3]
    exe = [str(Path(sys.executable).with_name("escalation"))]
    out = tmp_path / "audit"
    policy, events = str(root / "policies" / "three_strikes.esc"), str(root / "examples" / "sample.jsonl")
    proc = subprocess.run([*exe, "replay", policy, events, "--dask", "local", "--out-dir", str(out)], capture_output=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert (out / "manifest.json").exists()
    assert subprocess.run([*exe, "verify", str(out), "--policy", policy, "--events", events], capture_output=True, timeout=300).returncode == 0
    part = sorted(out.glob("part-*.jsonl"))[0]
    part.write_bytes(part.read_bytes().replace(b'"c-7-00001"', b'"c-7-0000X"', 1))
    assert subprocess.run([*exe, "verify", str(out)], capture_output=True, timeout=300).returncode == 5


def _snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative path -> bytes), and every folder (-> b"/")."""
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else b"/") for p in sorted(folder.rglob("*"))}


def _decoy(folder: Path) -> dict[str, bytes]:
    """A project's folder that happens to hold a `manifest.json` (a browser extension's, say)."""
    (folder / "src").mkdir(parents=True)
    (folder / "manifest.json").write_text('{"manifest_version": 3, "name": "my extension", "version": "1.0"}\n', encoding="utf-8")
    (folder / "src" / "background.js").write_text("console.log('my sources');\n", encoding="utf-8")
    (folder / "README.md").write_text("mine\n", encoding="utf-8")
    return _snapshot(folder)


def test_a_folder_that_is_not_a_partitioned_audit_is_never_replaced(cluster: str, shards: list[str], tmp_path: Path) -> None:
    """A fake manifest.json, or a real one beside other files: refused before any work, every file left byte for byte."""
    decoy = tmp_path / "project"
    before = _decoy(decoy)
    with pytest.raises(DistributedError, match="not a partitioned audit"):
        replay_distributed(POLICY_PATH, shards[:1], str(decoy), scheduler=cluster, partitions=2)
    assert _snapshot(decoy) == before
    replay_distributed(POLICY_PATH, shards[:1], str(tmp_path / "audit"), scheduler=cluster, partitions=2)
    for f in (tmp_path / "audit").iterdir():  # a valid audit, and the project's other files beside it
        shutil.copy(f, decoy / f.name)
    before = _snapshot(decoy)
    with pytest.raises(DistributedError, match="besides its partitioned audit"):
        replay_distributed(POLICY_PATH, shards[:1], str(decoy), scheduler=cluster, partitions=2)
    assert _snapshot(decoy) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["audit", "project"]  # no staging or renamed folder left


def test_the_command_line_refuses_a_decoy_out_dir_with_one_sentence(cluster: str, tmp_path: Path) -> None:
    import subprocess

    decoy = tmp_path / "project"
    before = _decoy(decoy)
    exe = str(Path(sys.executable).with_name("escalation"))
    events = str(ROOT / "examples" / "sample.jsonl")
    proc = subprocess.run([exe, "replay", POLICY_PATH, events, "--dask", cluster, "--out-dir", str(decoy)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr and "nothing was changed" in proc.stderr
    assert _snapshot(decoy) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["project"]


def test_replacing_an_audit_removes_only_the_files_its_manifest_lists(shards: list[str], tmp_path: Path) -> None:
    """An audit replaced: the new one in its place, nothing else left; a file that appeared during the replay stops the swap."""
    from escalation.audit import AuditFolderError, install_audit_folder

    out = tmp_path / "out"
    replay_distributed(POLICY_PATH, shards[:1], str(out), scheduler=None, partitions=3)
    replay_distributed(POLICY_PATH, shards[:2], str(out), scheduler=None, partitions=2)  # fewer parts: part 2 goes
    assert sorted(p.name for p in out.iterdir()) == [MANIFEST, part_name(0), part_name(1)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"] and verify_manifest(out, ENGINE).ok
    staging = tmp_path / "staging"
    replay_distributed(POLICY_PATH, shards[:1], str(staging), scheduler=None, partitions=1)
    (out / "notes.txt").write_text("written while the replay ran", encoding="utf-8")
    before = _snapshot(out)
    with pytest.raises(AuditFolderError, match=r"notes\.txt"):
        install_audit_folder(staging, out)
    assert _snapshot(out) == before and verify_manifest(staging, ENGINE).ok
