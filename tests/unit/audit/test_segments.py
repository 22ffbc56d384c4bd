"""Service audit segments (interfaces.md §5): written, cut by a kill and repaired, linked, and what verification refuses."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import ROOT
from escalation import Engine, load
from escalation.audit import ENGINE, SegmentWriter, list_segments, repair_cut, segment_file, verify_segments
from escalation.runtime import Line

POLICY = load(str(ROOT / "policies" / "three_strikes.esc"))


def _write(folder: Path, number: int, previous: str | None, records: int, close: bool = True) -> SegmentWriter:
    writer = SegmentWriter(segment_file(folder, number), POLICY, previous)
    for seq in range(1, records + 1):
        data = json.dumps({"conversation": "c", "time": "2026-11-22T10:00:00Z", "type": "nope", "n": seq}).encode()
        writer.append(data, {"kind": "rejected", "seq": seq, "source": writer.source(seq), "reason": "unknown type", "raw": data.decode()})
    writer.sync()
    if close:
        writer.close()
    else:
        writer.abandon()
    return writer


def test_linked_segments_verify_and_a_broken_link_does_not(tmp_path: Path) -> None:
    first = _write(tmp_path, 1, None, 3)
    _write(tmp_path, 2, first.last_hash, 2)
    found = verify_segments(tmp_path, ENGINE)
    assert found.result.ok and found.segments == 2 and found.records == 5
    second = tmp_path / "segment-000002.jsonl"
    second.unlink()
    (tmp_path / "segment-000002.input.jsonl").unlink()
    _write(tmp_path, 2, "0" * 64, 1)
    broken = verify_segments(tmp_path, ENGINE)
    assert not broken.result.ok and "previous_segment" in broken.result.message


def test_a_cut_segment_is_trimmed_at_restart_and_accepted_only_when_the_next_links_to_it(tmp_path: Path) -> None:
    cut = _write(tmp_path, 1, None, 4, close=False)
    log = tmp_path / "segment-000001.jsonl"
    log.write_bytes(log.read_bytes() + b'{"kind":"rejec')  # a record torn by the kill
    with open(tmp_path / "segment-000001.input.jsonl", "ab") as fh:
        fh.write(b'{"conversation":"c","time":"2026-11-22T10:00:00Z"}\n')  # an input line whose record never was
    alone = verify_segments(tmp_path, ENGINE)
    assert not alone.result.ok
    tail = repair_cut(tmp_path)
    assert tail is not None and tail.cut and tail.records == 4 and tail.last_hash == cut.last_hash
    assert len((tmp_path / "segment-000001.input.jsonl").read_bytes().splitlines()) == 4
    still = verify_segments(tmp_path, ENGINE)
    assert not still.result.ok and "cut" in still.result.message
    _write(tmp_path, 2, tail.last_hash, 1)
    assert verify_segments(tmp_path, ENGINE).result.ok
    assert [s.number for s in list_segments(tmp_path)] == [1, 2]


def test_a_changed_input_line_is_found_without_the_policy(tmp_path: Path) -> None:
    _write(tmp_path, 1, None, 2)
    path = tmp_path / "segment-000001.input.jsonl"
    path.write_bytes(path.read_bytes().replace(b'"n": 2', b'"n": 3'))
    found = verify_segments(tmp_path, ENGINE)
    assert not found.result.ok


def test_engine_records_number_each_line_as_given() -> None:
    engine = Engine(POLICY)
    lines = [Line(7, "x.jsonl:7", b'{"conversation":"c","time":"2026-11-22T10:00:00Z","type":"interaction.start","channel":"phone"}')]
    (record,) = engine.records(lines)
    assert record["seq"] == 7 and record["source"] == "x.jsonl:7" and record["kind"] == "decision"
