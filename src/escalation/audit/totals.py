"""One counter of what an audit log adds up to: for writing its summary, merging partitions and verifying it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from .chain import canonical, quote
from .records import COUNTS, CUSTOMERS, KINDS, WITH_CUSTOMERS, summary_record


def _by_kind() -> dict[str, int]:
    return dict.fromkeys(KINDS, 0)


@attrs.define
class Totals:
    """The counts of a summary record (interfaces.md §2), and the violations by rule (for the command line's text).

    A replay counts as it writes (:meth:`rejected_one`, :meth:`decision`, :meth:`closed`);
    a verifier counts the records it reads (:meth:`add`); the partitions of a replay merge
    (:meth:`merge`); :meth:`summary` is the summary record, :meth:`mismatch` compares one.
    """

    records: int = 0
    events: int = 0
    rejected: int = 0
    violations: int = 0
    by_kind: dict[str, int] = attrs.field(factory=_by_kind)
    by_rule: dict[str, int] = attrs.field(factory=dict)
    open_obligations: int = 0
    conversations: int = 0
    #: The distinct customers bound (format /2's ``customers``): counted by :meth:`bound`, or taken from a summary.
    customers: int = 0
    #: The customers counted by :meth:`bound` (so that partitions which share a customer merge to one count).
    customer_names: set[str] = attrs.field(factory=set)

    # -- counting while writing
    def rejected_one(self) -> None:
        """A rejected record."""
        self.records += 1
        self.rejected += 1

    def decision(self, violations: list[dict[str, Any]]) -> None:
        """A decision record, with the violations it holds (the conversations are counted by the caller, who knows which are new)."""
        self.records += 1
        self.events += 1
        if violations:
            self.count_violations(violations)

    def bound(self, customer: str) -> None:
        """A conversation was bound to ``customer`` (counted once however many conversations it has)."""
        if customer not in self.customer_names:
            self.customer_names.add(customer)
            self.customers += 1

    def closed(self, violations: list[dict[str, Any]], still_open: int) -> None:
        """A close record: its violations and the number of obligations it leaves open."""
        self.count_violations(violations)
        self.open_obligations += still_open

    def count_violations(self, violations: Iterable[dict[str, Any]]) -> None:
        by_kind, by_rule = self.by_kind, self.by_rule
        for v in violations:
            self.violations += 1
            by_kind[v["kind"]] = by_kind.get(v["kind"], 0) + 1
            by_rule[v["rule"]] = by_rule.get(v["rule"], 0) + 1

    # -- counting while reading
    def add(self, record: dict[str, Any], seen: set[str]) -> None:
        """Count a `decision`, `rejected` or `close` record read from a log (checked first); ``seen`` gathers the conversations."""
        kind = record.get("kind")
        if kind == "rejected":
            self.rejected_one()
            return
        if kind == "decision":
            self.decision(record["violations"])
            customer = record.get("customer")
            if customer is not None:
                self.bound(customer)
            conversation = record["conversation"]
            if conversation not in seen:
                seen.add(conversation)
                self.conversations += 1
        elif kind == "close":
            self.closed(record["violations"], len(record["open"]))

    # -- partitions
    def merge(self, other: Totals) -> None:
        """Add the totals of a replay of other conversations (a process of `--jobs`, a partition)."""
        for key in COUNTS:
            setattr(self, key, getattr(self, key) + getattr(other, key))
        if other.customer_names or not other.customers:  # names known: a customer two partitions share counts once
            for customer in other.customer_names:
                self.bound(customer)
        else:  # totals read from a summary: the partitions hold disjoint customers
            self.customers += other.customers
        for kind, n in other.by_kind.items():
            self.by_kind[kind] = self.by_kind.get(kind, 0) + n
        for rule, n in other.by_rule.items():
            self.by_rule[rule] = self.by_rule.get(rule, 0) + n

    @classmethod
    def of_summary(cls, summary: Mapping[str, Any], by_rule: Mapping[str, int] | None = None) -> Totals:
        """The totals a summary record (or a manifest's totals) holds; ``by_rule`` is not in it, so it may be given."""
        customers = summary.get(CUSTOMERS, 0) if WITH_CUSTOMERS else 0
        return cls(**{k: summary[k] for k in COUNTS}, by_kind=dict(summary["by_kind"]), by_rule=dict(by_rule or {}), customers=customers)

    # -- the summary
    def counts(self) -> dict[str, Any]:
        """The counts as a manifest's totals hold them (a summary record without its ``kind``)."""
        out: dict[str, Any] = {k: getattr(self, k) for k in COUNTS}
        out["by_kind"] = dict(self.by_kind)
        if WITH_CUSTOMERS:
            out[CUSTOMERS] = self.customers
        return out

    def summary(self) -> dict[str, Any]:
        """The `summary` record of these totals."""
        return summary_record(self.counts())

    def mismatch(self, summary: Mapping[str, Any], holder: str = "log") -> str | None:
        """Why ``summary`` does not match what was counted (values and JSON types), or None when it does."""
        expected = self.counts()
        keys = (*COUNTS[:5], "by_kind", "open_obligations") + ((CUSTOMERS,) if WITH_CUSTOMERS else ())
        for key in keys:
            value = expected[key]
            if key not in summary or canonical(summary[key]) != canonical(value):  # `true` is not 1
                return f"the summary says {key}={quote(summary.get(key))}, but the {holder} holds {value!r}"
        return None

