"""The I/O floor of a replay: read JSON Lines, write a hash-chained audit log, with no policy logic.

    python benchmarks/floor.py EVENTS... -o OUT [--json stdlib|orjson]

What any replay must do at the least, written plainly: digest every input
(the header names it), read each line, parse it as JSON, build one record of the
shape of a `decision` record (the same keys; `permitted`/`forbidden` filled with
the three-strikes policy's actions as they stand before any rule is active, the
other lists empty), chain it (`prev`, then `hash` = SHA-256 of the canonical
JSON without `hash`) and write its canonical line (keys sorted, separators
``,``/``:``, non-ASCII as itself, UTF-8), then a summary. No validation, no
state, no rules. With ``--json orjson`` the same with orjson's ``loads`` and
``dumps(OPT_SORT_KEYS)`` (identical bytes for these records).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from collections.abc import Callable
from typing import Any

GENESIS = "0" * 64
PERMITTED = [
    "agent.apologize",
    "agent.escalate",
    "agent.follow_up",
    "agent.offer_compensation",
    "agent.offer_solution",
    "agent.summarize",
    "agent.take_break",
    "agent.warn",
]
FORBIDDEN = ["agent.hang_up"]


def _codec(name: str) -> tuple[Callable[[bytes], Any], Callable[[dict[str, Any]], bytes]]:
    if name == "orjson":
        import orjson

        sort = orjson.OPT_SORT_KEYS
        return orjson.loads, lambda record: orjson.dumps(record, option=sort)
    dumps = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode
    return json.loads, lambda record: dumps(record).encode("utf-8")


def run(paths: list[str], out_path: str, codec: str) -> int:
    loads, canonical = _codec(codec)
    sha256 = hashlib.sha256
    inputs = []
    for path in paths:
        digest = sha256()
        with open(path, "rb") as fh:
            while block := fh.read(1 << 20):
                digest.update(block)
        inputs.append({"path": path, "sha256": digest.hexdigest()})
    tmp = f"{out_path}.tmp{os.getpid()}"
    prev = GENESIS
    count = 0
    with open(tmp, "wb") as out:
        write = out.write

        def emit(record: dict[str, Any]) -> None:
            nonlocal prev
            record["prev"] = prev
            prev = sha256(canonical(record)).hexdigest()
            record["hash"] = prev
            write(canonical(record) + b"\n")

        emit(
            {
                "kind": "header",
                "format": "escalation-audit/1",
                "policy": {"name": "floor", "version": None, "sha256": GENESIS},
                "engine": "floor",
                "inputs": inputs,
                "as_of": None,
            }
        )
        conversations: set[str] = set()
        for path in paths:
            with open(path, "rb") as fh:
                for number, line in enumerate(fh, 1):
                    obj = loads(line)
                    count += 1
                    conversations.add(obj["conversation"])
                    emit(
                        {
                            "kind": "decision",
                            "seq": count,
                            "source": f"{path}:{number}",
                            "conversation": obj["conversation"],
                            "time": obj["time"],
                            "type": obj["type"],
                            "event": obj,
                            "violations": [],
                            "fulfilled": [],
                            "created": [],
                            "fired": [],
                            "active": [],
                            "permitted": PERMITTED,
                            "forbidden": FORBIDDEN,
                        }
                    )
        emit(
            {
                "kind": "summary",
                "records": count,
                "events": count,
                "rejected": 0,
                "conversations": len(conversations),
                "violations": 0,
                "by_kind": {"forbidden_action": 0, "missed_deadline": 0, "unfulfilled": 0},
                "open_obligations": 0,
            }
        )
    os.replace(tmp, out_path)
    return count


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("events", nargs="+")
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("--json", choices=("stdlib", "orjson"), default="stdlib")
    args = ap.parse_args(argv)
    n = run(args.events, args.output, args.json)
    print(f"floor ({args.json}): {n} records into {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
