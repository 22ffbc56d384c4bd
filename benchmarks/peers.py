"""The hang-up decision of the three-strikes policy in each peer's rule language (benchmark section 3).

"Is `agent.hang_up` permitted now, given warnings, abuse_since_warning,
asked_for_supervisor, escalated and threat_count?" — forbidden while the
customer asked for a supervisor and was not put through; otherwise permitted
after two warnings and more abuse, or after a threat.

Each ``make_*`` returns ``decide(state) -> bool`` with the peer's rules parsed
or compiled once beforehand (each peer at its best: policy sets, bundles and
rule objects are built outside the timed call; what stays inside is what a
service has to do per decision: hand the state over and ask). A peer that is
not installed raises ImportError; the runner reports it as a note.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

State = dict[str, Any]
Decide = Callable[[State], bool]

#: The states the answers are checked on before anything is timed: (state, expected answer).
CHECKS: list[tuple[State, bool]] = [
    ({"warnings": 2, "abuse_since_warning": 1, "asked_for_supervisor": True, "escalated": True, "threat_count": 0}, True),
    ({"warnings": 2, "abuse_since_warning": 1, "asked_for_supervisor": True, "escalated": False, "threat_count": 0}, False),
    ({"warnings": 1, "abuse_since_warning": 1, "asked_for_supervisor": False, "escalated": False, "threat_count": 0}, False),
    ({"warnings": 0, "abuse_since_warning": 1, "asked_for_supervisor": False, "escalated": False, "threat_count": 1}, True),
    ({"warnings": 2, "abuse_since_warning": 0, "asked_for_supervisor": False, "escalated": False, "threat_count": 0}, False),
]
#: The state every contender is timed on: every clause has to be looked at.
TIMED_STATE: State = dict(CHECKS[0][0])


def make_plain() -> Decide:
    """Plain Python: one if-expression over a dict."""

    def decide(s: State) -> bool:
        return not (s["asked_for_supervisor"] and not s["escalated"]) and (
            (s["warnings"] >= 2 and s["abuse_since_warning"] >= 1) or s["threat_count"] >= 1
        )

    return decide


def make_rule_engine() -> Decide:
    import rule_engine

    rule = rule_engine.Rule(
        "not (asked_for_supervisor and not escalated) and ((warnings >= 2 and abuse_since_warning >= 1) or threat_count >= 1)"
    )
    return rule.matches  # type: ignore[no-any-return]


def make_business_rules() -> Decide:
    from business_rules import run_all
    from business_rules.actions import BaseActions, rule_action
    from business_rules.variables import BaseVariables, boolean_rule_variable, numeric_rule_variable

    class Variables(BaseVariables):  # type: ignore[untyped-decorator,misc,unused-ignore]
        def __init__(self, state: State) -> None:
            self.state = state

        @numeric_rule_variable  # type: ignore[untyped-decorator,misc,unused-ignore]
        def warnings(self) -> int:
            return self.state["warnings"]  # type: ignore[no-any-return]

        @numeric_rule_variable  # type: ignore[untyped-decorator,misc,unused-ignore]
        def abuse_since_warning(self) -> int:
            return self.state["abuse_since_warning"]  # type: ignore[no-any-return]

        @numeric_rule_variable  # type: ignore[untyped-decorator,misc,unused-ignore]
        def threat_count(self) -> int:
            return self.state["threat_count"]  # type: ignore[no-any-return]

        @boolean_rule_variable  # type: ignore[untyped-decorator,misc,unused-ignore]
        def asked_for_supervisor(self) -> bool:
            return self.state["asked_for_supervisor"]  # type: ignore[no-any-return]

        @boolean_rule_variable  # type: ignore[untyped-decorator,misc,unused-ignore]
        def escalated(self) -> bool:
            return self.state["escalated"]  # type: ignore[no-any-return]

    class Actions(BaseActions):  # type: ignore[untyped-decorator,misc,unused-ignore]
        def __init__(self) -> None:
            self.permitted = False

        @rule_action(params={})  # type: ignore[untyped-decorator,misc,unused-ignore]
        def permit_hang_up(self) -> None:
            self.permitted = True

    rules = [
        {
            "conditions": {
                "all": [
                    {
                        "any": [
                            {"name": "asked_for_supervisor", "operator": "is_false", "value": True},
                            {"name": "escalated", "operator": "is_true", "value": True},
                        ]
                    },
                    {
                        "any": [
                            {
                                "all": [
                                    {"name": "warnings", "operator": "greater_than_or_equal_to", "value": 2},
                                    {"name": "abuse_since_warning", "operator": "greater_than_or_equal_to", "value": 1},
                                ]
                            },
                            {"name": "threat_count", "operator": "greater_than_or_equal_to", "value": 1},
                        ]
                    },
                ]
            },
            "actions": [{"name": "permit_hang_up", "params": {}}],
        }
    ]

    def decide(state: State) -> bool:
        actions = Actions()
        run_all(rules, Variables(state), actions, stop_on_first_trigger=True)
        return actions.permitted

    return decide


_durable_made = 0


def make_durable_rules() -> Decide:
    from durable.engine import MessageNotHandledException
    from durable.lang import m, post, ruleset, when_all

    global _durable_made
    _durable_made += 1
    name = f"hang_up_{_durable_made}"  # a ruleset name can be registered only once per process
    fired: list[bool] = []
    with ruleset(name):

        @when_all(  # type: ignore[untyped-decorator,misc,unused-ignore]
            ((m.asked_for_supervisor == False) | (m.escalated == True))  # noqa: E712 (the rule DSL, not Python comparisons)
            & (((m.warnings >= 2) & (m.abuse_since_warning >= 1)) | (m.threat_count >= 1))
        )
        def permit_hang_up(c: Any) -> None:
            fired.append(True)

    def decide(state: State) -> bool:
        fired.clear()
        try:
            post(name, dict(state))  # durable-rules adds keys to the event it is given
        except MessageNotHandledException:
            return False
        return bool(fired)

    return decide


CEDAR_POLICY = """permit(principal, action == Action::"hang_up", resource)
when {
  !(context.asked_for_supervisor && !context.escalated) &&
  ((context.warnings >= 2 && context.abuse_since_warning >= 1) || context.threat_count >= 1)
};"""


def make_cedarpy() -> Decide:
    import cedarpy

    policies: Any = CEDAR_POLICY
    entities: Any = []
    if hasattr(cedarpy, "PolicySet"):  # parse once where the version allows it
        policies = cedarpy.PolicySet.from_str(CEDAR_POLICY)
    if hasattr(cedarpy, "Entities"):
        entities = cedarpy.Entities.from_json_str("[]")

    def decide(state: State) -> bool:
        request = {"principal": 'Agent::"a-1"', "action": 'Action::"hang_up"', "resource": 'Call::"c-1"', "context": state}
        return bool(cedarpy.is_authorized(request, policies, entities).allowed)

    return decide


REGO_MODULE = """package escalation

default hang_up := false

hang_up if {
  not forbidden
  permitted
}

forbidden if {
  input.asked_for_supervisor
  not input.escalated
}

permitted if {
  input.warnings >= 2
  input.abuse_since_warning >= 1
}

permitted if input.threat_count >= 1
"""


def make_regopy() -> Decide:
    from regopy import Interpreter

    build = Interpreter()
    build.add_module("escalation", REGO_MODULE)
    bundle = build.build("x = data.escalation.hang_up", ["escalation/hang_up"])  # compiled once
    rego = Interpreter()
    keep = (build, bundle)  # the bundle refers to its builder's memory: both must outlive every query

    def decide(state: State) -> bool:
        assert keep
        rego.set_input(state)
        output = rego.query_bundle_entrypoint(bundle, "escalation/hang_up")  # the fastest way in regopy 1.5
        return bool(output.ok() and output[0][0] is True)

    return decide


#: (name shown in the table, the PyPI package, the maker).
PEERS: list[tuple[str, str, Callable[[], Decide]]] = [
    ("rule-engine", "rule-engine", make_rule_engine),
    ("business-rules", "business-rules", make_business_rules),
    ("durable-rules", "durable-rules", make_durable_rules),
    ("cedarpy", "cedarpy", make_cedarpy),
    ("regopy", "regopy", make_regopy),
]
