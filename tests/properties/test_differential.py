"""The evaluator agrees with the reference interpreter, event by event, on generated policies and streams.

The evaluator (compile/ + runtime/) keeps constant-size state per temporal
operator; the reference (reference.py) rescans the whole history for every
expression. Any difference in any decision is a bug in one of them. Each
property runs once per back end (runtime/backend.py), by name.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from escalation import check_source, load_checked, parse
from escalation.audit import violation_json
from escalation.check.checker import CheckedPolicy
from escalation.compile import codegen, compile_policy
from escalation.lang import ast
from escalation.lang.units import US, format_time
from escalation.reference import ReferenceCustomer, ReferenceInteraction
from escalation.runtime import BACKEND_NAMES, CustomerState, Decision, Interaction, Obligation, Violation
from escalation.runtime.events import validate
from helpers.customer_streams import customer_streams
from helpers.policy_strategies import BASE_TIME, event_streams, mentioned, policy_texts

THREE_STRIKES = Path(__file__).resolve().parents[3] / "shared" / "conformance" / "three_strikes.esc"

_PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _violation(v: Violation) -> dict[str, Any]:
    return {k: val for k, val in violation_json(v).items() if k != "message"}


def _obligation(ob: Obligation) -> dict[str, Any]:
    return {"id": ob.id, "rule": ob.rule, "actions": list(ob.actions), "created_at": ob.created_at, "due": ob.due, "before": ob.before}


def _fast(d: Decision) -> dict[str, Any]:
    return {
        "violations": [_violation(v) for v in d.violations],
        "fulfilled": list(d.fulfilled),
        "created": [_obligation(ob) for ob in d.created],
        "fired": list(d.fired),
        "active": list(d.active),
        "permitted": list(d.permitted_actions),
        "forbidden": list(d.forbidden_actions),
    }


def _without_messages(violations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in x.items() if k != "message"} for x in violations]


def _run_both(checked: CheckedPolicy, records: list[dict[str, Any]], as_of_offset: int, backend: str) -> None:
    """Feed ``records`` to the back end named ``backend`` and the reference: the permissions before the
    first event, every decision, and the end of the input (without an ``as_of``, at the last event, and
    later) must agree."""
    compiled = compile_policy(checked, backend=backend)
    fast: dict[str, Interaction] = {}
    slow: dict[str, ReferenceInteraction] = {}
    for seq, record in enumerate(records, 1):
        event = validate(record, checked.vocabulary)
        if event.conversation not in fast:
            fast[event.conversation] = Interaction(compiled, event.conversation)
            assert fast[event.conversation].steps is compiled.steps[backend]
            slow[event.conversation] = ReferenceInteraction(checked, event.conversation)
            initial = [list(x) for x in fast[event.conversation].permissions()]
            assert initial == list(slow[event.conversation].initial_permissions()), "before the first event"
        expected = slow[event.conversation].feed(event)
        expected["violations"] = _without_messages(expected["violations"])
        assert _fast(fast[event.conversation].feed(event)) == expected, f"{backend}, at event {seq} of {len(records)}: {record}"
    for conversation, inter in fast.items():
        ref = slow[conversation]
        last = ref.history[-1].time
        for as_of in (None, last, last + as_of_offset):
            violations, still_open = inter.close(as_of)
            ref_violations, ref_open = ref.close(as_of)
            assert [_violation(v) for v in violations] == _without_messages(ref_violations), f"close({as_of}) of {conversation}"
            assert [_obligation(ob) for ob in still_open] == ref_open, f"close({as_of}) of {conversation}"


@pytest.mark.parametrize("backend", BACKEND_NAMES)
@_PROPERTY
@given(st.data())
def test_evaluator_matches_reference_on_generated_policies(backend: str, data: st.DataObject) -> None:
    text = data.draw(policy_texts(), label="policy")
    result = check_source(text)
    assert result.checked is not None, [d.message for d in result.diagnostics]
    vocabulary = result.checked.vocabulary
    records = data.draw(event_streams(vocabulary, max_events=30, prefer=mentioned(text, vocabulary)), label="events")
    _run_both(result.checked, records, data.draw(st.integers(0, 600), label="as_of offset (s)") * US, backend)


def _one_conversation(text: str, records: list[tuple[int, str, dict[str, Any]]]) -> None:
    result = check_source(text)
    assert result.checked is not None, [d.message for d in result.diagnostics]
    stream = [{"conversation": "c", "time": format_time(BASE_TIME + s * US), "type": t, **attrs} for s, t, attrs in records]
    for backend in BACKEND_NAMES:
        _run_both(result.checked, stream, 0, backend)


def test_a_count_inside_the_brackets_of_another_keeps_its_own_slot() -> None:
    # regression: the outer count was given the inner one's slot, so agent.apologize alone made `r` active
    policy = """policy "p"
rule r {
  while count agent.warn[count agent.apologize >= 1] >= 1
  require agent.summarize within 1m
}
"""
    _one_conversation(policy, [(0, "agent.apologize", {}), (1, "agent.warn", {})])


def test_a_let_as_the_else_value_of_last_stands_for_its_value() -> None:
    # no fault.determined yet: the `last` is `usual`, which is `company`, so `r` is active
    # (regression: the compiler used the let's name, the string "usual")
    policy = """policy "p"
let usual = last party of fault.determined else company
rule r {
  while last party of fault.determined[party != customer] else usual == company
  require agent.apologize within 1m
}
"""
    _one_conversation(policy, [(0, "agent.apologize", {})])


#: Small policies whose windows and deadlines have the sizes of the gaps between generated events,
#: so that events land exactly on their edges (at `now - D`, at a deadline) again and again.
EDGE_POLICIES = (
    """policy "windows"
default forbid agent.hang_up
rule busy { while count customer.message within 30s >= 2 permit agent.hang_up }
rule lull { while count customer.message[abuse != none] since agent.warn within 1m == 0 and seen agent.warn forbid agent.hang_up }
rule fresh { while count agent.warn within 15s >= 1 require agent.summarize within 15s }
""",
    """policy "deadlines"
rule reply { on customer.message require agent.warn or agent.hang_up within 30s }
rule soon { on customer.message[abuse == insult] require agent.apologize within 15s before interaction.end }
rule calm { while time since customer.message >= 1m require agent.summarize within 1m }
rule close { on interaction.end if count customer.message within 2m >= 1 require agent.take_break within 1m }
""",
    """policy "recency"
default forbid agent.offer_compensation severity high
rule recent { while time since agent.apologize <= 30s permit agent.offer_compensation }
rule stale { while time since agent.apologize > 1m and seen agent.apologize forbid agent.offer_compensation severity low }
rule due { on agent.offer_compensation require agent.follow_up within 1m }
""",
)


@pytest.mark.parametrize("backend", BACKEND_NAMES)
@_PROPERTY
@given(st.data())
def test_evaluator_matches_reference_at_window_and_deadline_edges(backend: str, data: st.DataObject) -> None:
    result = check_source(data.draw(st.sampled_from(EDGE_POLICIES), label="policy"))
    assert result.checked is not None
    names = ["customer.message", "agent.warn", "agent.hang_up", "agent.apologize", "agent.offer_compensation", "interaction.end", "agent.summarize"]
    records = data.draw(event_streams(result.checked.vocabulary, max_events=30, prefer=names), label="events")
    _run_both(result.checked, records, data.draw(st.sampled_from((0, 1, 15, 30, 60)), label="as_of offset (s)") * US, backend)


@pytest.mark.skipif(not THREE_STRIKES.exists(), reason=f"the conformance policy {THREE_STRIKES} is absent")
@pytest.mark.parametrize("backend", BACKEND_NAMES)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_evaluator_matches_reference_on_three_strikes(backend: str, data: st.DataObject) -> None:
    checked = load_checked(str(THREE_STRIKES))
    text = THREE_STRIKES.read_text(encoding="utf-8")
    records = data.draw(event_streams(checked.vocabulary, max_events=30, prefer=mentioned(text, checked.vocabulary)), label="events")
    _run_both(checked, records, data.draw(st.integers(0, 3600), label="as_of offset (s)") * US, backend)


def test_the_reference_shares_no_code_with_the_evaluator() -> None:
    import ast as pyast

    import escalation.reference

    tree = pyast.parse(Path(escalation.reference.__file__).read_text(encoding="utf-8"))
    imported = {("escalation." if node.level else "") + node.module for node in pyast.walk(tree) if isinstance(node, pyast.ImportFrom) and node.module}
    imported |= {alias.name for node in pyast.walk(tree) if isinstance(node, pyast.ImportFrom) and node.module is None for alias in node.names}
    assert not {m for m in imported if m.startswith("escalation.compile")}
    assert not imported & {"escalation.runtime.interaction", "escalation.runtime.backend", "escalation.runtime.steps", "compiler", "evaluator"}


# ---------------------------------------------------------------- the generator keeps covering the language


def _features(text: str) -> set[str]:
    """The constructs a policy text uses, by name."""
    found: set[str] = set()
    policy = parse(text)
    lets = {let.name.text for let in policy.lets}
    for node in ast.walk(policy):
        if isinstance(node, ast.Count):
            found.add("count")
            found |= {"count since"} if node.since else set()
            found |= {"count within"} if node.window else set()
            found |= {"count since within"} if node.since and node.window else set()
        elif isinstance(node, ast.Seen):
            found.add("seen since" if node.since else "seen")
        elif isinstance(node, ast.Last):
            found.add("last else" if node.default is not None else "last")
            found |= {"last else let"} if isinstance(node.default, ast.NameRef) and node.default.name in lets else set()
        elif isinstance(node, ast.TimeSince):
            found.add("time since")
        elif isinstance(node, ast.Pattern) and node.cond is not None:
            found.add("brackets")
            if any(isinstance(inner, (ast.Count, ast.Seen, ast.Last, ast.TimeSince)) for inner in ast.walk(node.cond)):
                found.add("temporal inside brackets")
        elif isinstance(node, ast.Require):
            found.add({(True, False): "require within", (False, True): "require before", (True, True): "require within before"}[(node.within is not None, node.before is not None)])
            found |= {"require or"} if len(node.patterns) > 1 else set()
        elif isinstance(node, ast.Rule):
            found.add("on" if isinstance(node.trigger, ast.On) else "while")
            found |= {"on if"} if isinstance(node.trigger, ast.On) and node.trigger.cond is not None else set()
            found |= {"severity"} if node.severity else set()
            found |= {"because"} if node.because else set()
        elif isinstance(node, ast.Permission):
            found.add(node.effect)
        elif isinstance(node, ast.Default):
            found.add(f"default {node.effect}" + (" severity" if node.severity else ""))
        elif isinstance(node, ast.Decl):
            found.add(f"declared {node.kind}")
        elif isinstance(node, ast.Let):
            found.add("let")
        elif isinstance(node, ast.BoolOp):
            found.add(node.op)
        elif isinstance(node, (ast.Not, ast.In, ast.Arith)):
            found.add(type(node).__name__.lower())
        elif isinstance(node, ast.Compare):
            found.add(f"compare {node.op}")
    return found


EVERY_FEATURE = {
    "count", "count since", "count within", "count since within", "seen", "seen since", "last", "last else", "last else let", "time since",
    "brackets", "temporal inside brackets", "require within", "require before", "require within before", "require or",
    "on", "on if", "while", "permit", "forbid", "severity", "because", "default forbid", "default forbid severity", "default permit",
    "declared event", "declared action", "let", "and", "or", "not", "in", "arith",
    *(f"compare {op}" for op in ("==", "!=", "<", "<=", ">", ">=")),
}  # fmt: skip


def test_generated_policies_cover_every_construct_and_pass_the_checker() -> None:
    seen: Counter[str] = Counter()
    invalid: list[str] = []

    @seed(20261122)
    @settings(max_examples=150, database=None, deadline=None, phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(policy_texts())
    def sample(text: str) -> None:
        if not check_source(text).ok:
            invalid.append(text)
        seen.update(_features(text))

    sample()
    assert invalid == []
    assert EVERY_FEATURE - set(seen) == set(), f"the generator never wrote {sorted(EVERY_FEATURE - set(seen))}"


@_PROPERTY
@given(st.data())
def test_grouped_while_rules_match_the_reference(data: st.DataObject) -> None:
    """The loop over generated conditions (used for long runs of while rules) agrees too (generated back end)."""
    saved = codegen.INLINE_WHILE
    codegen.INLINE_WHILE = 0
    try:
        text = data.draw(policy_texts(), label="policy")
        result = check_source(text)
        assert result.checked is not None
        records = data.draw(event_streams(result.checked.vocabulary, max_events=30, prefer=mentioned(text, result.checked.vocabulary)), label="events")
        _run_both(result.checked, records, 60 * US, "generated")
    finally:
        codegen.INLINE_WHILE = saved


# ---------------------------------------------------------------- lets read twice, clocks about other events


def _doubling(n: int) -> str:
    """``n`` lets, each the previous added to itself (a{n} is 2^n warnings): memoised, not expanded."""
    lets = "let a0 = count agent.warn\n" + "".join(f"let a{i} = a{i - 1} + a{i - 1}\n" for i in range(1, n + 1))
    return (
        f'policy "Doubling" version "1"\ndefault forbid agent.hang_up\n{lets}'
        f"rule r {{\n  while a{n} >= a{n - 1} + a{n - 1} and a{n - 1} - a{n - 2} >= a0 + a0 + a0\n  permit agent.hang_up\n}}\n"
        f"rule o {{\n  on agent.warn if a{n} - a{n - 1} == a{n - 1} and a{n} >= 1\n  require agent.summarize within 1m\n}}\n"
        f"rule w {{\n  while count customer.message[abuse != none] within 1m >= 1 and a{n // 2} >= 1\n  forbid agent.hang_up\n}}\n"
    )


@pytest.mark.parametrize("n", [22, 60])
def test_doubling_lets_agree_with_the_reference(n: int) -> None:
    steps = [(0, "agent.hang_up", {}), (1, "agent.warn", {}), (2, "agent.hang_up", {}), (3, "customer.message", {"abuse": "insult"})]
    steps += [(4, "agent.warn", {}), (5, "agent.hang_up", {}), (70, "agent.hang_up", {}), (71, "agent.summarize", {})]
    _one_conversation(_doubling(n), steps)


TIMED_ELSEWHERE = """policy "Clocks" version "1"
event ticket.note { n: int = 0 }
default forbid agent.offer_compensation
rule fresh { while time since ticket.note[n == 1] < 10m permit agent.offer_compensation }
rule stale { while time since ticket.note >= 10m and seen ticket.note require agent.follow_up within 1m }
rule busy { while count ticket.note within 1m >= 2 forbid agent.offer_compensation severity low }
rule quiet { while count ticket.note[n == 2] within 30s == 0 and time since agent.warn > 20s require agent.summarize within 1m }
rule mixed { while time since ticket.note < time since agent.warn or time since ticket.note in {30s, 1m} require agent.apologize within 1m }
rule warned { on agent.warn if count ticket.note within 1m >= 1 require agent.take_break within 1m }
"""


def test_timed_rules_about_other_events_change_at_their_instant() -> None:
    """Events of other types land on, just before and just after each instant a clock can change."""
    steps = [(0, "ticket.note", {"n": 1}), (0, "ticket.note", {"n": 2}), (1, "agent.warn", {}), (20, "agent.summarize", {})]
    steps += [(21, "agent.offer_compensation", {}), (29, "agent.apologize", {}), (30, "agent.apologize", {}), (31, "agent.apologize", {})]
    steps += [(60, "agent.offer_compensation", {}), (61, "agent.warn", {}), (62, "ticket.note", {"n": 3}), (91, "agent.apologize", {})]
    steps += [(121, "agent.summarize", {}), (122, "agent.offer_compensation", {}), (599, "agent.follow_up", {})]
    steps += [(600, "agent.offer_compensation", {}), (601, "agent.offer_compensation", {}), (662, "agent.follow_up", {}), (663, "agent.warn", {})]
    _one_conversation(TIMED_ELSEWHERE, steps)


@pytest.mark.parametrize("backend", BACKEND_NAMES)
@_PROPERTY
@given(st.data())
def test_timed_rules_about_other_events_match_the_reference(backend: str, data: st.DataObject) -> None:
    result = check_source(TIMED_ELSEWHERE)
    assert result.checked is not None
    names = ["ticket.note", "agent.warn", "agent.offer_compensation", "agent.apologize", "agent.summarize", "agent.follow_up"]
    records = data.draw(event_streams(result.checked.vocabulary, max_events=30, prefer=names), label="events")
    _run_both(result.checked, records, data.draw(st.sampled_from((0, 1, 30, 60, 600)), label="as_of offset (s)") * US, backend)


# ---------------------------------------------------------------- customers (language.md §9)

_CUSTOMER_PROPERTY = settings(_PROPERTY, max_examples=150)


def _run_customers(checked: CheckedPolicy, records: list[dict[str, Any]], backend: str) -> None:
    """Feed a multi-customer stream to the back end and the reference as a replay will: a conversation binds at its
    first event with a non-empty `customer`, just before that event is fed; every decision and the end must agree."""
    compiled = compile_policy(checked, backend=backend)
    fast: dict[str, Interaction] = {}
    slow: dict[str, ReferenceInteraction] = {}
    customers: dict[str, CustomerState] = {}
    ref_customers: dict[str, ReferenceCustomer] = {}
    for seq, raw in enumerate(records, 1):
        record = dict(raw)
        customer = record.pop("customer", "")
        event = validate(record, checked.vocabulary)
        conversation = event.conversation
        if conversation not in fast:
            fast[conversation] = Interaction(compiled, conversation)
            slow[conversation] = ReferenceInteraction(checked, conversation)
            assert [list(x) for x in fast[conversation].permissions()] == list(slow[conversation].initial_permissions())
        inter, ref = fast[conversation], slow[conversation]
        if customer and inter.customer is None:
            state = customers.setdefault(customer, CustomerState(compiled, customer))
            inter.bind(state)
            ref.bind(ref_customers.setdefault(customer, ReferenceCustomer(checked, customer)))
        assert inter.customer in (None, customer) or not customer
        expected = ref.feed(event)
        expected["violations"] = _without_messages(expected["violations"])
        assert _fast(inter.feed(event)) == expected, f"{backend}, at event {seq} of {len(records)}: {raw}"
        if inter.customer is not None:
            assert customers[inter.customer].latest == event.time
    for conversation, inter in fast.items():
        ref = slow[conversation]
        last = ref.history[-1].time
        for as_of in (None, last, last + 3600 * US):
            violations, still_open = inter.close(as_of)
            ref_violations, ref_open = ref.close(as_of)
            assert [_violation(v) for v in violations] == _without_messages(ref_violations), f"close({as_of}) of {conversation}"
            assert [_obligation(ob) for ob in still_open] == ref_open, f"close({as_of}) of {conversation}"


@pytest.mark.parametrize("backend", BACKEND_NAMES)
@_CUSTOMER_PROPERTY
@given(st.data())
def test_evaluator_matches_reference_across_contacts(backend: str, data: st.DataObject) -> None:
    text = data.draw(policy_texts(language=2), label="policy")
    result = check_source(text)
    assert result.checked is not None, [d.message for d in result.diagnostics]
    vocabulary = result.checked.vocabulary
    records = data.draw(customer_streams(vocabulary, prefer=mentioned(text, vocabulary)), label="events")
    _run_customers(result.checked, records, backend)


CUSTOMER_POLICY = """policy "customers"
default forbid agent.hang_up
let warnings = count agent.warn within 1h across contacts
let abusive = seen customer.message[abuse != none] within 10m across contacts
rule refuse { while warnings >= 2 permit agent.hang_up }
rule note { on customer.message[count agent.warn across contacts >= 1] require agent.summarize within 2 working days }
rule recent { while abusive and time since agent.warn across contacts < 5m forbid agent.hang_up }
rule fault { while last party of fault.determined across contacts else unknown == company require agent.apologize within 1m }
"""


@pytest.mark.parametrize("backend", BACKEND_NAMES)
def test_customer_history_is_shared_from_the_binding_event_on(backend: str) -> None:
    # c1 warns twice before binding (its own history only), then binds: the customer history starts empty;
    # c2, same customer, warns twice: both see the customer's two warnings from their next event on
    t = BASE_TIME
    rows = [
        ("c1", 0, "agent.warn", {}, ""),
        ("c1", 1, "agent.warn", {}, ""),
        ("c1", 2, "customer.message", {"abuse": "insult"}, "k"),
        ("c2", 3, "agent.warn", {}, "k"),
        ("c2", 4, "agent.warn", {}, ""),
        ("c1", 5, "fault.determined", {"party": "company"}, ""),
        ("c3", 6, "agent.warn", {}, ""),
        ("c2", 7, "agent.hang_up", {}, "k"),
    ]
    records = [
        {"conversation": c, "time": format_time(t + s * US), "type": ty, **attrs, **({"customer": k} if k else {})} for c, s, ty, attrs, k in rows
    ]
    result = check_source(CUSTOMER_POLICY)
    assert result.checked is not None, [d.message for d in result.diagnostics]
    assert result.checked.reads_customer_history
    _run_customers(result.checked, records, backend)
