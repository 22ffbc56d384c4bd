"""Comparing audit logs in tests: the first differing line, not a diff of megabytes."""

from __future__ import annotations


def same_log(got: bytes, want: bytes) -> None:
    """Assert two audit logs are identical; on failure name the first differing line (a diff of megabytes would take minutes)."""
    if got == want:
        return
    a, b = got.splitlines(), want.splitlines()
    at = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
    got_line = a[at][:600] if at < len(a) else b"(none)"
    want_line = b[at][:600] if at < len(b) else b"(none)"
    raise AssertionError(f"the logs differ first at line {at + 1} of {len(a)}/{len(b)}:\n got  {got_line!r}\n want {want_line!r}")
