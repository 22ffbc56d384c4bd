"""Compiling language 2's evaluation forms: slots of scope customer, `seen ... within`, working-day requires."""

from __future__ import annotations

from escalation.check import check_source
from escalation.compile import CUSTOMER, INTERACTION, CompiledPolicy, compile_policy

POLICY = """policy "p"
let mine = count agent.warn
let theirs = count agent.warn across contacts
let lately = seen agent.warn within 10m across contacts
rule r { while mine + theirs >= 2 and lately permit agent.hang_up }
rule s { while mine >= 1 forbid agent.offer_compensation }
rule w { on customer.message require agent.follow_up within 3 working days }
"""


def _compiled(text: str) -> CompiledPolicy:
    result = check_source(text)
    assert result.checked is not None, [d.message for d in result.diagnostics]
    return compile_policy(result.checked)


def test_the_same_operator_across_contacts_has_a_slot_of_its_own() -> None:
    policy = _compiled(POLICY)
    assert [(op.kind, op.scope) for op in policy.ops] == [("count", INTERACTION), ("count", CUSTOMER), ("wcount", CUSTOMER)]
    assert policy.customer_slots == (1, 2)
    assert policy.reads_customer_history


def test_a_rule_reading_the_customer_is_shared_and_evaluated_at_every_event() -> None:
    policy = _compiled(POLICY)
    r, s = policy.while_rules
    assert r.shared and not s.shared
    for plan in policy.plans.values():
        assert r in plan.step5 and r.position not in plan.guarded


def test_seen_within_reads_a_window_and_working_days_keep_their_count() -> None:
    policy = _compiled(POLICY)
    state = policy.initial_state()
    state[2].append(0)
    lately = policy.lets["lately"]
    assert lately(state, None, 600_000_000) is True and lately(state, None, 600_000_001) is False
    (spec,) = policy.requires
    assert spec.within is None and spec.working_days == 3


def test_a_version_1_policy_has_no_customer_slot() -> None:
    policy = _compiled('policy "p"\nrule r { while count agent.warn >= 1 permit agent.hang_up }\n')
    assert policy.customer_slots == () and not policy.reads_customer_history
    assert not any(rule.shared for rule in policy.while_rules)
