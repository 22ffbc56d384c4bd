"""Shared while rules are re-evaluated only when their customer slots changed (CustomerState stamps), and stay right.

An interaction bound to a customer skips the `while` rules that read customer history
when no event of the customer changed the slots they read since its own last step
(TypePlan.watched), and reads the customer's slots in only when the customer changed.
These tests interleave several conversations of one customer and check, event by event,
that both back ends decide what the reference interpreter decides.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from escalation.check import check_source
from escalation.compile import CompiledPolicy, compile_policy
from escalation.lang import format_time, parse_time
from escalation.lang.units import US
from escalation.reference import ReferenceCustomer, ReferenceInteraction
from escalation.runtime import CustomerState, Interaction, validate

POLICY = """policy "Stamps" version "1"
default forbid agent.hang_up
let warnings = count agent.warn within 1m across contacts
let abuse = count customer.message[abuse != none] across contacts
let restricted = seen agent.hang_up within 30s across contacts
rule hang_up_after_warnings {
  while warnings >= 2 and abuse >= 1
  permit agent.hang_up
}
rule refuse_while_restricted {
  while restricted
  forbid agent.escalate
}
rule fault {
  while last party of fault.determined across contacts else unknown in {company, employee}
  require agent.apologize before interaction.end
}
rule own_calm {
  while count agent.warn >= 1 and time since customer.message < 20s
  permit agent.hang_up
}
"""

TYPES: list[tuple[str, dict[str, Any]]] = [
    ("customer.message", {"abuse": "none"}),
    ("customer.message", {"abuse": "insult"}),
    ("agent.warn", {}),
    ("agent.apologize", {}),
    ("agent.escalate", {"to": "supervisor"}),
    ("fault.determined", {"party": "company"}),
    ("fault.determined", {"party": "customer"}),
    ("agent.hang_up", {}),
    ("interaction.end", {}),
]
BASE = parse_time("2026-11-22T10:00:00Z")


def _compiled() -> CompiledPolicy:
    result = check_source(POLICY)
    assert result.checked is not None, [d.message for d in result.diagnostics]
    return compile_policy(result.checked)


def _stream(seed: int, n: int, conversations: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    now = BASE
    out = []
    for _ in range(n):
        now += rng.choice((0, 1, 3, 15, 40)) * US  # some gaps let the windows and `time since` move
        etype, attrs = rng.choice(TYPES)
        out.append({"conversation": f"c{rng.randrange(conversations)}", "time": format_time(now), "type": etype, **attrs})
    return out


def _shape(active: Any, violations: Any) -> tuple[list[str], list[tuple[str, str]]]:
    return list(active), sorted((v["kind"], v["rule"]) if isinstance(v, dict) else (v.kind, v.rule) for v in violations)


@pytest.mark.parametrize("backend", ["generated", "closures"])
@pytest.mark.parametrize("seed", range(6))
def test_bound_conversations_decide_as_the_reference(backend: str, seed: int) -> None:
    policy = _compiled()
    assert policy.while_rules[0].watch and policy.plans["agent.apologize"].watched  # the case under test is there
    checked = policy.checked
    customer, ref_customer = CustomerState(policy, "k"), ReferenceCustomer(checked, "k")
    inters: dict[str, Interaction] = {}
    refs: dict[str, ReferenceInteraction] = {}
    for i, record in enumerate(_stream(seed, 400, 3)):
        event = validate(record, policy.vocabulary)
        conversation = event.conversation
        if conversation not in inters:
            inters[conversation] = Interaction(policy, conversation, backend)
            refs[conversation] = ReferenceInteraction(checked, conversation)
            inters[conversation].bind(customer)
            refs[conversation].bind(ref_customer)
        got = inters[conversation].feed(event)
        want = refs[conversation].feed(event)
        assert _shape(got.active, got.violations) == _shape(want["active"], want["violations"]), f"event {i}: {record}"


@pytest.mark.parametrize("backend", ["generated", "closures"])
def test_a_rule_turns_on_from_another_conversations_events(backend: str) -> None:
    """Two warnings and an insult in conversation a: the next event of b, of a type that touches no customer slot, permits hang-up."""
    policy = _compiled()
    customer = CustomerState(policy, "k")
    a, b = Interaction(policy, "a", backend), Interaction(policy, "b", backend)
    a.bind(customer)
    b.bind(customer)

    def feed(inter: Interaction, second: int, etype: str, **attrs: Any) -> Any:
        return inter.feed(validate({"conversation": inter.conversation, "time": format_time(BASE + second * US), "type": etype, **attrs}, policy.vocabulary))

    feed(b, 0, "interaction.start")
    feed(b, 1, "agent.apologize")  # b's customer slots are now read; nothing holds
    assert "hang_up_after_warnings" not in feed(b, 2, "agent.apologize").active
    feed(a, 3, "agent.warn")
    feed(a, 4, "agent.warn")
    feed(a, 5, "customer.message", abuse="insult")
    assert "hang_up_after_warnings" in feed(b, 6, "agent.apologize").active  # seen through the stamps
    assert "hang_up_after_warnings" in feed(b, 7, "agent.apologize").active  # unchanged since: skipped, still on
    assert "hang_up_after_warnings" not in feed(b, 65, "agent.apologize").active  # the warnings left the window: time alone
    assert customer.version == 3  # one per event that may update a customer slot (apologies and starts do not)
