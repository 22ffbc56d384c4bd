"""Streams of many customers and conversations (language.md §9): late binding, anonymous callers, interleaving.

:func:`customer_streams` draws one time-ordered stream (so every customer's events are in
time order, as admission requires of a policy that reads customer history) and spreads it
over conversations; each conversation belongs to a customer or to nobody (anonymous), and
names its customer first at a drawn event (late binding), then at some later events only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hypothesis import strategies as st

from escalation.lang import EventType
from helpers.policy_strategies import event_records


@st.composite
def customer_streams(
    draw: st.DrawFn,
    vocabulary: dict[str, EventType],
    max_conversations: int = 5,
    max_customers: int = 2,
    max_events: int = 30,
    prefer: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """Event records of up to ``max_conversations`` conversations of up to ``max_customers`` customers, interleaved."""
    base = draw(event_records(vocabulary, "x", max_events, prefer))
    conversations = [f"c{i + 1}" for i in range(draw(st.integers(1, max_conversations)))]
    customers = [f"k{i + 1}" for i in range(draw(st.integers(1, max_customers)))]
    owner = {c: draw(st.one_of(st.none(), st.sampled_from(customers))) for c in conversations}
    bind_at = {c: draw(st.integers(0, 3)) for c in conversations}  # the index of its binding event among its own
    seen: dict[str, int] = {}
    out: list[dict[str, Any]] = []
    for record in base:
        conversation = draw(st.sampled_from(conversations))
        k = seen.get(conversation, 0)
        seen[conversation] = k + 1
        record = {**record, "conversation": conversation}
        record.pop("customer", None)  # a reserved key (§9): only drawn below
        customer = owner[conversation]
        if customer is not None:
            if k == bind_at[conversation] or (k > bind_at[conversation] and draw(st.booleans())):
                record["customer"] = customer
            elif k < bind_at[conversation] and draw(st.integers(0, 3)) == 0:
                record["customer"] = ""  # the same as absent
        out.append(record)
    return out
