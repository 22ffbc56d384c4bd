"""The orjson fast path of event decoding gives exactly what the careful stdlib path gives."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from escalation.errors import EventError
from escalation.runtime.events import _fast_decode, decode_line

_scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12)


def _careful(line: bytes) -> object:
    pairs_seen: list[object] = []

    def hook(pairs: list[tuple[str, object]]) -> dict[str, object]:
        keys = [k for k, _ in pairs]
        if len(set(keys)) != len(keys):
            raise ValueError("duplicate")
        pairs_seen.append(pairs)
        return dict(pairs)

    return json.loads(line, object_pairs_hook=hook)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(st.text(max_size=6), _scalars), max_size=6), st.booleans())
def test_fast_path_agrees_with_the_careful_one(items: list[tuple[str, object]], spaced: bool) -> None:
    body = (", " if spaced else ",").join(f"{json.dumps(k)}{' : ' if spaced else ':'}{json.dumps(v)}" for k, v in items)
    line = ("{" + body + "}").encode("utf-8", "surrogatepass")
    fast = _fast_decode(line)
    try:
        expected: object = _careful(line)
    except ValueError:
        expected = None
    if fast is not None:
        assert fast == expected and all(type(fast[k]) is type(expected[k]) for k in fast)  # type: ignore[index]
    try:
        got: object = decode_line(line)
    except EventError:
        got = None
    if expected is not None and not any((isinstance(v, float) and v != v) or v in (float("inf"), float("-inf")) for v in expected.values()):  # type: ignore[attr-defined]
        assert got == expected


@pytest.mark.parametrize("line", [b'{"a": 1, "a": 2}', b'{"a":"x",":b":1,":b":2}', b'{"a": 12345678901234567890123}'])
def test_what_the_fast_path_must_not_decide(line: bytes) -> None:
    assert _fast_decode(line) is None
