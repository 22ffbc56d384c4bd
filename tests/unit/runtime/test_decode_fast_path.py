"""Event decoding (an orjson fast path, then the careful stdlib path) gives exactly what the careful path alone gives.

Through the public :func:`decode_line` only: whatever the fast path decides must be what the careful one would.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from escalation.errors import EventError
from escalation.runtime import decode_line

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
    try:
        expected: object = _careful(line)
    except ValueError:
        expected = None
    try:
        got: object = decode_line(line)
    except EventError:
        got = None
    if expected is None:  # a duplicate key: refused
        assert got is None
    elif not any((isinstance(v, float) and v != v) or v in (float("inf"), float("-inf")) for v in expected.values()):  # type: ignore[attr-defined]
        assert got == expected and all(type(got[k]) is type(expected[k]) for k in got)  # type: ignore[index]


@pytest.mark.parametrize("line", [b'{"a": 1, "a": 2}', b'{"a":"x",":b":1,":b":2}'])
def test_a_duplicate_key_is_refused_whichever_path_reads_it(line: bytes) -> None:
    with pytest.raises(EventError):
        decode_line(line)


def test_an_integer_beyond_64_bits_is_read_exactly() -> None:
    assert decode_line(b'{"a": 12345678901234567890123}') == {"a": 12345678901234567890123}
