"""Comparing audit logs in tests: the first differing line, not a diff of megabytes; every place in a record."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def same_log(got: bytes, want: bytes) -> None:
    """Assert two audit logs are identical; on failure name the first differing line (a diff of megabytes would take minutes)."""
    if got == want:
        return
    a, b = got.splitlines(), want.splitlines()
    at = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
    got_line = a[at][:600] if at < len(a) else b"(none)"
    want_line = b[at][:600] if at < len(b) else b"(none)"
    raise AssertionError(f"the logs differ first at line {at + 1} of {len(a)}/{len(b)}:\n got  {got_line!r}\n want {want_line!r}")


def json_paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every place in a JSON value: each key and each list index, at every depth."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield (*prefix, k)
            yield from json_paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield (*prefix, i)
            yield from json_paths(v, (*prefix, i))
