"""The three-strikes policy (benchmarks/three_strikes.esc) written by hand in plain Python.

The baseline of the in-process benchmark: what a competent engineer would write
for this one policy without a policy engine — the same state (counters and
flags per conversation), the same permission for `agent.hang_up`, the same
obligations with their deadlines and `before interaction.end`, and the same
violations in the same order (language.md §10), with plain ints, strings,
tuples and lists. It is checked against the engine: `benchmarks/run.py`
asserts that both find the same violations (kind and rule) over the whole
stream, and `tests/project/test_benchmarks.py` compares them event by event.

    conv = Conversation("c-1")
    violations, fulfilled, created, hang_up_permitted = conv.feed("customer.message", t_us, {"abuse": "insult"})

Violations are ``(kind, rule, obligation number or None)``; obligations
``(n, rule, due in µs or None, before)``.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

US = 1_000_000
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
ONE_US = timedelta(microseconds=1)

ACTIONS = frozenset(
    {
        "agent.warn",
        "agent.apologize",
        "agent.summarize",
        "agent.offer_solution",
        "agent.offer_compensation",
        "agent.escalate",
        "agent.hang_up",
        "agent.follow_up",
        "agent.take_break",
    }
)
REQUIRES_WARNING = frozenset({"insult", "harassment", "discrimination", "threat"})
AT_FAULT = frozenset({"company", "employee"})

# The obligations: rule name, and the action types that fulfil it.
WARN = "warn_on_abuse"  # agent.warn or agent.hang_up within 30s
SUPERVISOR = "supervisor_on_request"  # agent.escalate[to == supervisor] within 2m
APOLOGY = "apologise_when_at_fault"  # agent.apologize before interaction.end (rising edge of a while rule)
BREAK = "break_after_abusive_call"  # agent.take_break within 15m
FOLLOW_UP = "follow_up_after_resolution"  # agent.follow_up within 48h
FULFILS = {
    WARN: ("agent.warn", "agent.hang_up"),
    SUPERVISOR: ("agent.escalate",),
    APOLOGY: ("agent.apologize",),
    BREAK: ("agent.take_break",),
    FOLLOW_UP: ("agent.follow_up",),
}


def parse_time(text: str) -> int:
    """RFC 3339 (as the benchmark streams write it) -> microseconds since the epoch."""
    if text[-1] in "Zz":
        text = text[:-1] + "+00:00"
    return (datetime.fromisoformat(text) - EPOCH) // ONE_US


class Conversation:
    """One interaction under the three-strikes policy."""

    __slots__ = (
        "abuse_since_warning",
        "abusive_messages",
        "apology_rule_active",
        "asked_for_supervisor",
        "conversation",
        "escalated",
        "fault",
        "last_time",
        "next_n",
        "pending",
        "threats",
        "warnings",
    )

    def __init__(self, conversation: str) -> None:
        self.conversation = conversation
        self.warnings = 0
        self.abusive_messages = 0
        self.abuse_since_warning = 0
        self.threats = 0
        self.fault = "unknown"
        self.asked_for_supervisor = False
        self.escalated = False  # seen agent.escalate since customer.requests_supervisor
        self.apology_rule_active = False
        self.pending: list[tuple[int, str, int | None, bool]] = []
        self.next_n = 1
        self.last_time = -1

    def hang_up_permitted(self) -> bool:
        if self.asked_for_supervisor and not self.escalated:
            return False
        return (self.warnings >= 2 and self.abuse_since_warning >= 1) or self.threats >= 1

    def feed(
        self, etype: str, t: int, attrs: dict[str, Any]
    ) -> tuple[list[tuple[str, str, int | None]], list[int], list[tuple[int, str, int | None, bool]], bool]:
        if t < self.last_time:
            raise ValueError(f"time goes backwards in {self.conversation}")
        self.last_time = t
        violations: list[tuple[str, str, int | None]] = []
        fulfilled: list[int] = []
        pending = self.pending

        # 1. deadlines that passed before t
        if pending:
            missed = [ob for ob in pending if ob[2] is not None and ob[2] < t]
            if missed:
                missed.sort(key=lambda ob: (ob[2], ob[0]))
                pending = [ob for ob in pending if ob[2] is None or ob[2] >= t]
                violations.extend(("missed_deadline", ob[1], ob[0]) for ob in missed)

        # 2. an action, judged on the state before it; then the obligations it fulfils
        if etype in ACTIONS:
            if etype == "agent.hang_up":
                if self.asked_for_supervisor and not self.escalated:
                    violations.append(("forbidden_action", "no_hang_up_before_supervisor", None))
                elif not ((self.warnings >= 2 and self.abuse_since_warning >= 1) or self.threats >= 1):
                    violations.append(("forbidden_action", "default", None))
            if pending:
                keep = []
                for ob in pending:
                    if etype in FULFILS[ob[1]] and (etype != "agent.escalate" or attrs.get("to", "supervisor") == "supervisor"):
                        fulfilled.append(ob[0])
                    else:
                        keep.append(ob)
                pending = keep

        # 3. before-events
        if etype == "interaction.end" and pending:
            broken = [ob for ob in pending if ob[3]]
            if broken:
                pending = [ob for ob in pending if not ob[3]]
                violations.extend(("unfulfilled", ob[1], ob[0]) for ob in broken)

        # 4. state
        abuse = "none"
        if etype == "customer.message":
            abuse = attrs.get("abuse", "none")
            if abuse != "none":
                self.abusive_messages += 1
                self.abuse_since_warning += 1
                if abuse == "threat":
                    self.threats += 1
        elif etype == "agent.warn":
            self.warnings += 1
            self.abuse_since_warning = 0
        elif etype == "customer.requests_supervisor":
            self.asked_for_supervisor = True
            self.escalated = False
        elif etype == "agent.escalate":
            self.escalated = True
        elif etype == "fault.determined":
            self.fault = attrs["party"]

        # 5. rules, in source order
        created: list[tuple[int, str, int | None, bool]] = []
        if abuse in REQUIRES_WARNING:
            created.append(self._oblige(WARN, t + 30 * US, False))
        elif etype == "customer.requests_supervisor":
            created.append(self._oblige(SUPERVISOR, t + 120 * US, False))
        at_fault = self.fault in AT_FAULT
        if at_fault and not self.apology_rule_active:
            created.append(self._oblige(APOLOGY, None, True))
        self.apology_rule_active = at_fault
        if etype == "interaction.end" and self.abusive_messages >= 1:
            created.append(self._oblige(BREAK, t + 15 * 60 * US, False))
        elif etype == "issue.resolved":
            created.append(self._oblige(FOLLOW_UP, t + 48 * 3600 * US, False))
        if created:
            pending = pending + created
        self.pending = pending

        # 6. permissions: only agent.hang_up is ever forbidden under this policy
        return violations, fulfilled, created, self.hang_up_permitted()

    def _oblige(self, rule: str, due: int | None, before_end: bool) -> tuple[int, str, int | None, bool]:
        n = self.next_n
        self.next_n = n + 1
        return (n, rule, due, before_end)


class Replay:
    """Many interleaved conversations: feed stream records (dicts) or pre-parsed ``(conversation, t, type, attrs)``."""

    __slots__ = ("conversations",)

    def __init__(self) -> None:
        self.conversations: dict[str, Conversation] = {}

    def conversation(self, cid: str) -> Conversation:
        conv = self.conversations.get(cid)
        if conv is None:
            conv = self.conversations[cid] = Conversation(cid)
        return conv

    def feed_record(
        self, record: dict[str, Any]
    ) -> tuple[list[tuple[str, str, int | None]], list[int], list[tuple[int, str, int | None, bool]], bool]:
        return self.conversation(record["conversation"]).feed(record["type"], parse_time(record["time"]), record)

    def feed(
        self, cid: str, t: int, etype: str, attrs: dict[str, Any]
    ) -> tuple[list[tuple[str, str, int | None]], list[int], list[tuple[int, str, int | None, bool]], bool]:
        return self.conversation(cid).feed(etype, t, attrs)
