"""CustomerState (language.md §9): binding, snapshots checked on resume, the spill form; working-day deadlines."""

from __future__ import annotations

import pytest

from escalation.check import check_source
from escalation.compile import CUSTOMER, compile_policy
from escalation.errors import SnapshotError
from escalation.lang.units import format_time, parse_time
from escalation.runtime import CustomerState, Interaction
from escalation.runtime.codec import pack_state, unpack_customer, unpack_state
from escalation.runtime.events import validate

POLICY = """policy "p"
let warnings = count agent.warn within 1h across contacts
let told = seen agent.warn within 10m
calendar { zone "Europe/London" holidays "2026-12-25", "2026-12-28" }
rule refuse { while warnings >= 2 permit agent.hang_up }
rule write { on customer.message[abuse == insult] require agent.follow_up within 5 working days }
rule quiet { while told forbid agent.offer_compensation }
"""


def compiled():  # type: ignore[no-untyped-def]
    result = check_source(POLICY)
    assert result.checked is not None, [d.message for d in result.diagnostics]
    return compile_policy(result.checked)


def event(policy, conversation: str, time: str, etype: str, **attrs):  # type: ignore[no-untyped-def]
    return validate({"conversation": conversation, "time": time, "type": etype, **attrs}, policy.vocabulary)


def test_the_compiled_policy_knows_its_customer_slots_and_calendar() -> None:
    policy = compiled()
    assert policy.reads_customer_history
    assert [policy.ops[i].scope for i in policy.customer_slots] == [CUSTOMER]
    assert policy.calendar is policy.checked.calendar


def test_two_conversations_of_one_customer_share_its_history() -> None:
    policy = compiled()
    customer = CustomerState(policy, "k")
    a, b = Interaction(policy, "a"), Interaction(policy, "b")
    a.feed(event(policy, "a", "2026-12-18T10:00:00Z", "agent.warn"))  # before binding: a's own history
    a.bind(customer)
    assert a.customer == "k"
    a.feed(event(policy, "a", "2026-12-18T10:01:00Z", "agent.warn"))
    b.bind(customer)
    d = b.feed(event(policy, "b", "2026-12-18T10:02:00Z", "agent.warn"))
    assert d.permitted("agent.hang_up")  # two warnings of the customer history (a's first is not in it)
    assert customer.latest == parse_time("2026-12-18T10:02:00Z")
    with pytest.raises(ValueError, match="bound to customer `k`"):
        a.bind(CustomerState(policy, "other"))


def test_working_days_use_the_policy_calendar() -> None:
    policy = compiled()
    inter = Interaction(policy, "a")
    d = inter.feed(event(policy, "a", "2026-12-18T15:00:00Z", "customer.message", abuse="insult"))
    assert [format_time(ob.due or 0) for ob in d.created] == ["2026-12-30T00:00:00Z"]  # language.md §10's example
    again = Interaction.resume(policy, inter.snapshot())
    assert [ob.due for ob in again.pending] == [ob.due for ob in inter.pending]
    snap = inter.snapshot()
    snap["pending"][0][3] += 1
    with pytest.raises(SnapshotError, match="working days"):
        Interaction.resume(policy, snap)


def test_snapshots_and_spill_keep_the_binding_and_the_customer() -> None:
    policy = compiled()
    customer = CustomerState(policy, "k")
    inter = Interaction(policy, "a")
    inter.bind(customer)
    inter.feed(event(policy, "a", "2026-12-18T10:00:00Z", "agent.warn"))
    snap = inter.snapshot()
    assert snap["customer"] == "k"
    resumed = Interaction.resume(policy, snap)
    assert resumed.customer == "k" and resumed.bound is None
    thawed = Interaction.thawed(policy, "a", unpack_state(pack_state(inter.frozen())))
    assert thawed.customer == "k"
    back = CustomerState.resume(policy, customer.snapshot())
    assert back.customer == "k" and back.latest == customer.latest
    assert [list(back.state[i]) for i in policy.customer_slots] == [list(customer.state[i]) for i in policy.customer_slots]
    spilled = CustomerState.thawed(policy, "k", unpack_customer(pack_state(customer.frozen())))
    assert spilled.latest == customer.latest and list(spilled.state[policy.customer_slots[0]]) == list(customer.state[policy.customer_slots[0]])
    resumed.bind(back)
    d = resumed.feed(event(policy, "a", "2026-12-18T10:01:00Z", "agent.warn"))
    assert d.permitted("agent.hang_up")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"format": "x"}, "not an escalation-customer/1 snapshot"),
        ({"policy_sha256": "0" * 64}, "another policy"),
        ({"customer": ""}, "`customer` must be a non-empty string"),
        ({"customer": 3}, "`customer` must be a non-empty string"),
        ({"state": []}, "has 0 slots"),
        ({"state": [[5, 1]]}, "ascending"),
        ({"latest": None}, "records no event yet"),
        ({"latest": "soon"}, "`latest` must be an integer time"),
        ({"extra": 1}, "unknown key"),
    ],
)
def test_a_customer_snapshot_that_does_not_fit_is_refused(change: dict[str, object], message: str) -> None:
    policy = compiled()
    customer = CustomerState(policy, "k")
    inter = Interaction(policy, "a")
    inter.bind(customer)
    inter.feed(event(policy, "a", "2026-12-18T10:00:00Z", "agent.warn"))
    inter.feed(event(policy, "a", "2026-12-18T10:00:01Z", "agent.warn"))
    snap = {**customer.snapshot(), **change}
    with pytest.raises(SnapshotError, match=message):
        CustomerState.resume(policy, snap)
    missing = customer.snapshot()
    del missing["latest"]
    with pytest.raises(SnapshotError, match="has no `latest`"):
        CustomerState.resume(policy, missing)


def test_an_interaction_snapshot_with_a_bad_binding_is_refused() -> None:
    policy = compiled()
    inter = Interaction(policy, "a")
    for bad, message in ((3, "`customer` must be null"), ("", "`customer` must be null")):
        with pytest.raises(SnapshotError, match=message):
            Interaction.resume(policy, {**inter.snapshot(), "customer": bad})
    with pytest.raises(SnapshotError, match="records no event yet"):
        Interaction.resume(policy, {**inter.snapshot(), "customer": "k"})


def test_a_bound_snapshot_resumes_after_the_customer_moved_on() -> None:
    # a's snapshot is taken after b added later events to the customer's window: it holds none of them
    policy = compiled()
    customer = CustomerState(policy, "k")
    a, b = Interaction(policy, "a"), Interaction(policy, "b")
    a.bind(customer)
    b.bind(customer)
    a.feed(event(policy, "a", "2026-12-18T10:00:00Z", "agent.warn"))
    a.feed(event(policy, "a", "2026-12-18T10:00:01Z", "agent.warn"))
    b.feed(event(policy, "b", "2026-12-18T10:05:00Z", "agent.warn"))
    snap = a.snapshot()
    assert snap["active"] == ["refuse", "quiet"]
    resumed = Interaction.resume(policy, snap)
    assert resumed.active == a.active
    resumed.bind(CustomerState.resume(policy, customer.snapshot()))
    assert resumed.feed(event(policy, "a", "2026-12-18T10:06:00Z", "agent.apologize")).permitted("agent.hang_up")
    with pytest.raises(SnapshotError, match="bound to a customer"):
        Interaction.resume(policy, {**snap, "state": [[a.last_time], *snap["state"][1:]]})
