"""The audit log: canonical lines, the hash chain, and what verify catches."""

from __future__ import annotations

import hashlib
import io
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from escalation.audit import FORMAT, GENESIS, AuditWriter, canonical, stdlib_canonical, verify_stream
from escalation.audit.chain import chained_line
from escalation.replay import ENGINE


def _log(records: list[dict[str, object]]) -> bytes:
    buf = io.BytesIO()
    AuditWriter(buf).write_all(records)
    return buf.getvalue()


def _sample() -> bytes:
    return _log(
        [
            {
                "kind": "header",
                "format": FORMAT,
                "engine": ENGINE,
                "policy": {"name": "p", "version": None, "sha256": "0" * 64},
                "inputs": [{"path": "-", "sha256": "1" * 64}],
                "as_of": None,
            },
            {"kind": "rejected", "seq": 1, "source": "-:1", "reason": "x", "raw": "é"},
            {
                "kind": "summary",
                "records": 1,
                "events": 0,
                "rejected": 1,
                "conversations": 0,
                "customers": 0,
                "violations": 0,
                "by_kind": {"forbidden_action": 0, "missed_deadline": 0, "unfulfilled": 0},
                "open_obligations": 0,
            },
        ]
    )


def test_each_line_is_canonical_and_chained() -> None:
    lines = _sample().splitlines()
    prev = GENESIS
    for line in lines:
        record = json.loads(line)
        assert record["prev"] == prev
        body = {k: v for k, v in record.items() if k != "hash"}
        assert record["hash"] == hashlib.sha256(canonical(body)).hexdigest()
        assert canonical(record) == line
        prev = record["hash"]
    assert "é".encode() in lines[1]  # non-ASCII written as itself


def test_verify_accepts_an_intact_log() -> None:
    assert verify_stream(io.BytesIO(_sample()), ENGINE).ok


def test_verify_names_the_first_bad_line() -> None:
    lines = _sample().splitlines(keepends=True)
    lines[1] = lines[1].replace(b'"x"', b'"y"')
    result = verify_stream(io.BytesIO(b"".join(lines)), ENGINE)
    assert not result.ok and result.line == 2


def test_verify_rejects_truncation_and_another_engine() -> None:
    data = _sample()
    assert not verify_stream(io.BytesIO(data.rsplit(b"\n", 2)[0] + b"\n"), ENGINE).ok
    result = verify_stream(io.BytesIO(data), "escalation 9.9.9")
    assert not result.ok and "verify it with that version" in result.message





def _json(floats: bool) -> st.SearchStrategy[object]:
    scalars = st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.text()
    if floats:
        scalars = scalars | st.floats(allow_nan=False, allow_infinity=False)
    return st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4), max_leaves=12)


_KEYS = st.sampled_from(["a", "hash2", "kind", "zeta", "fired", "h"])


@settings(max_examples=300, deadline=None)
@given(_json(floats=True))
def test_canonical_is_exactly_the_stdlib_bytes(value: object) -> None:
    assert canonical(value) == stdlib_canonical(value)  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_KEYS, _json(floats=False), max_size=5), st.none() | _json(floats=True), st.text(alphabet="0123456789abcdef", min_size=64, max_size=64))
def test_single_pass_chaining_equals_the_two_pass_definition(record: dict[str, object], event: object, prev: str) -> None:
    """Engine records hold floats only in the input `event`; everything else is exact."""
    if event is not None:
        record = dict(record, event=event)
    line, digest = chained_line(dict(record), prev)
    body = dict(record, prev=prev)
    assert digest == hashlib.sha256(stdlib_canonical(body)).hexdigest()
    assert line == stdlib_canonical(dict(body, hash=digest))
