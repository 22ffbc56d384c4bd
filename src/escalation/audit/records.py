"""The record schema of the audit log (interfaces.md §2), in one home: every record the engine writes is built here.

A header, one ``decision`` or ``rejected`` record per input record, ``close`` records and a
``summary``; obligations and violations inside them take the forms :func:`obligation_json`
and :func:`violation_json` give. The records are plain dicts without ``prev`` and ``hash``
(the writer of :mod:`escalation.audit.chain` chains them).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from ..lang import US, format_time
from ..runtime import Decision, Line, Obligation, Violation
from ..version import __version__

#: The format the header names: the ONE switch between ``escalation-audit/1`` and ``escalation-audit/2``
#: (interfaces.md §2). /2 is /1 plus each decision's ``customer`` and the summary's ``customers``; every
#: other module asks :data:`WITH_CUSTOMERS`. The lead flips it to /2 with the conformance wiring.
FORMAT = "escalation-audit/2"
#: Whether the records carry the customer fields of format /2 (decision ``customer``, summary ``customers``).
WITH_CUSTOMERS = FORMAT != "escalation-audit/1"
#: Who wrote a log: the header's ``engine``, which ``verify`` requires to be its own.
ENGINE = f"escalation {__version__}"
#: The kinds of violation, in the order a summary's ``by_kind`` lists them.
KINDS = ("forbidden_action", "missed_deadline", "unfulfilled")
SEVERITIES = ("low", "medium", "high", "critical")
#: The counts of a summary record (and of a manifest's totals), besides ``by_kind``.
COUNTS = ("records", "events", "rejected", "conversations", "violations", "open_obligations")
#: The summary's count of distinct customers bound (format /2 only; see :data:`WITH_CUSTOMERS`).
CUSTOMERS = "customers"


class PolicyFacts(Protocol):
    """What a header or manifest names of the policy (a compiled policy has these)."""

    @property
    def name(self) -> str: ...
    @property
    def version(self) -> str | None: ...
    @property
    def sha256(self) -> str: ...


class Digested(Protocol):
    """An input as a header names it: its path as given and the SHA-256 of its bytes."""

    @property
    def path(self) -> str: ...
    @property
    def sha256(self) -> str: ...


def time_or_null(t: int | None) -> str | None:
    """A time as the log writes it, or None."""
    return format_time(t) if t is not None else None


def policy_json(policy: PolicyFacts) -> dict[str, Any]:
    """The header's (and the manifest's) ``policy``: {name, version, sha256}."""
    return {"name": policy.name, "version": policy.version, "sha256": policy.sha256}


def inputs_json(inputs: Iterable[Digested]) -> list[dict[str, str]]:
    """The header's (and the manifest's) ``inputs``: [{path, sha256}] in input order."""
    return [{"path": i.path, "sha256": i.sha256} for i in inputs]


def header_record(
    policy: PolicyFacts, inputs: Sequence[Digested], as_of: int | None, idle_horizon: int | None = None, *, partition: tuple[int, int] | None = None
) -> dict[str, Any]:
    """The first record; it names every option that changes the output (``idle_horizon`` only when used).

    ``partition`` (index, count) marks the header of one part of a partitioned audit.
    """
    header: dict[str, Any] = {
        "kind": "header",
        "format": FORMAT,
        "policy": policy_json(policy),
        "engine": ENGINE,
        "inputs": inputs_json(inputs),
        "as_of": time_or_null(as_of),
    }
    if idle_horizon is not None:
        header["idle_horizon"] = idle_horizon // US
    if partition is not None:
        header["partition"] = {"index": partition[0], "count": partition[1]}
    return header


def obligation_json(ob: Obligation) -> dict[str, Any]:
    """An obligation as records hold it: {id, rule, actions, created_at, due, before}."""
    spec = ob.spec
    return {
        "id": ob.id,
        "rule": spec.rule,
        "actions": list(spec.actions),
        "created_at": format_time(ob.created_at),
        "due": format_time(ob.due) if ob.due is not None else None,
        "before": spec.before,
    }


def violation_json(v: Violation) -> dict[str, Any]:
    """A violation as records hold it: all seven keys, null where one does not apply."""
    return {
        "kind": v.kind,
        "rule": v.rule,
        "rules": list(v.rules),
        "action": v.action,
        "obligation": v.obligation,
        "severity": v.severity,
        "message": v.message,
    }


def decision_record(line: Line, conversation: str, raw: dict[str, Any], d: Decision, customer: str | None = None) -> dict[str, Any]:
    """The record of one accepted event (sequences may be tuples; they encode as arrays).

    ``customer`` is the customer the conversation is bound to after this event (format /2
    writes it, null when unbound; /1 leaves it out).
    """
    stamp = raw.get("time")
    if not (type(stamp) is str and len(stamp) == 20 and stamp[10] == "T" and stamp[19] == "Z"):  # already canonical UTC?
        stamp = format_time(d.time)
    record = {
        "kind": "decision",
        "seq": line.seq,
        "source": line.source,
        "conversation": conversation,
        "time": stamp,
        "type": d.type,
        "event": raw,
        "violations": [violation_json(v) for v in d.violations] if d.violations else [],
        "fulfilled": d.fulfilled,
        "created": [obligation_json(ob) for ob in d.created] if d.created else [],
        "fired": d.fired,
        "active": d.active,
        "permitted": d.permitted_actions,
        "forbidden": d.forbidden_actions,
    }
    if WITH_CUSTOMERS:
        record["customer"] = customer
    return record


def rejected_record(line: Line, reason: str) -> dict[str, Any]:
    """The record of an input record that was rejected: its place, why, and the line as read."""
    return {
        "kind": "rejected",
        "seq": line.seq,
        "source": line.source,
        "reason": reason,
        "raw": line.data.decode("utf-8", errors="replace"),
    }


def close_record(conversation: str, as_of: int | None, violations: Sequence[Violation], still_open: Sequence[Obligation]) -> dict[str, Any]:
    """The record of a conversation that ends the replay owing something or newly violated."""
    return {
        "kind": "close",
        "conversation": conversation,
        "as_of": time_or_null(as_of),
        "violations": [violation_json(v) for v in violations],
        "open": [obligation_json(ob) for ob in still_open],
    }


def summary_record(counts: Mapping[str, Any]) -> dict[str, Any]:
    """The last record: the :data:`COUNTS` and ``by_kind`` of ``counts`` (a :meth:`Totals.counts`), and ``customers`` in /2."""
    record = {
        "kind": "summary",
        "records": counts["records"],
        "events": counts["events"],
        "rejected": counts["rejected"],
        "conversations": counts["conversations"],
        "violations": counts["violations"],
        "by_kind": dict(counts["by_kind"]),
        "open_obligations": counts["open_obligations"],
    }
    if WITH_CUSTOMERS:
        record[CUSTOMERS] = counts[CUSTOMERS]
    return record
