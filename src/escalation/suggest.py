"""Edit distance and "did you mean", shared by the parser, the checker and event validation.

Bounded for hostile input: at most :data:`MAX_SUGGESTION_SCAN` candidates are looked at and
at most :data:`MAX_SUGGESTION_DISTANCES` distances computed per name, so a 100,000-member
enum or vocabulary costs a bounded amount per unknown name.
"""

from __future__ import annotations

from collections.abc import Iterable


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance, for "did you mean"."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


#: "Did you mean" looks at most at this many candidates, and computes at most this many edit
#: distances (for those of a near length, in order), so a 100,000-member enum or vocabulary
#: costs a bounded amount per unknown name.
MAX_SUGGESTION_SCAN = 5_000
MAX_SUGGESTION_DISTANCES = 200
#: Names longer than this get no suggestion (as for event values, events.py).
MAX_SUGGESTION_CHARS = 64


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    """The closest candidate within a small edit distance, if any (one pass over ``candidates``, bounded)."""
    if len(name) > MAX_SUGGESTION_CHARS:
        return None
    best: tuple[int, str] | None = None
    limit = max(1, min(3, len(name) // 3 + 1))
    last_part = name.rsplit(".", 1)[-1] if "." in name else None
    same_last_part: str | None = None  # a dotted name whose last part alone matches: customer.mesage -> customer.message
    distances = 0
    for scanned, candidate in enumerate(candidates):
        if scanned >= MAX_SUGGESTION_SCAN or distances >= MAX_SUGGESTION_DISTANCES:
            break
        if same_last_part is None and last_part is not None and candidate.rsplit(".", 1)[-1] == last_part:
            same_last_part = candidate
        if abs(len(candidate) - len(name)) > limit:  # the distance is at least the difference in length
            continue
        distances += 1
        d = edit_distance(name, candidate)
        if d <= limit and d < len(name) and (best is None or (d, candidate) < best):
            best = (d, candidate)
    return best[1] if best else same_last_part
