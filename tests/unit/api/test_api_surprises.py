"""The library surprises of issue 13 (item 4), each fixed: unknown action names raise, times are one type, loads(),
Policy.actions/version/name, snapshots tied to what the policy means."""

from __future__ import annotations

import json

import pytest

import escalation
from conftest import ROOT
from escalation import PolicyError, SnapshotError, UnknownActionError

THREE_STRIKES = ROOT / "policies" / "three_strikes.esc"
INSULT = {"time": "2026-11-22T10:00:00Z", "type": "customer.message", "abuse": "insult"}


def _policy() -> escalation.Policy:
    return escalation.load(str(THREE_STRIKES))


def test_an_unknown_action_name_raises_a_key_error_with_a_did_you_mean() -> None:
    session = _policy().start("c-1")
    d = session.feed(INSULT)
    for ask in (d.permitted, d.forbidden, session.permitted, session.forbidden):
        with pytest.raises(UnknownActionError) as err:
            ask("agent.hangup")
        assert isinstance(err.value, KeyError) and isinstance(err.value, escalation.EscalationError)
        assert str(err.value) == "`agent.hangup` is not an action of policy 'Three strikes'; did you mean `agent.hang_up`?"
    with pytest.raises(UnknownActionError, match="its actions are"):
        d.permitted("customer.message")  # an event, not an action
    assert d.forbidden("agent.hang_up") and not d.permitted("agent.hang_up")


def test_times_in_results_are_rfc_3339_strings() -> None:
    session = _policy().start("c-1")
    d = session.feed(INSULT)
    assert d.time == "2026-11-22T10:00:00Z"
    (ob,) = d.obligations
    assert (ob.created_at, ob.due) == ("2026-11-22T10:00:00Z", "2026-11-22T10:00:30Z")
    assert d.created == d.obligations == tuple(session.obligations)
    assert ob.as_json() == {"id": "c-1#1", "rule": ob.rule, "actions": list(ob.actions), "created_at": ob.created_at, "due": ob.due, "before": None}


def test_loads_name_version_and_actions() -> None:
    text = THREE_STRIKES.read_text(encoding="utf-8")
    policy = escalation.loads(text)
    assert policy.name == "Three strikes" and policy.version == _policy().version
    assert policy.actions == tuple(sorted(policy.actions)) and "agent.hang_up" in policy.actions
    assert policy.digest == _policy().digest
    with pytest.raises(PolicyError) as err:
        escalation.loads('policy "x"\nlet n = count nothing.here\n')
    assert err.value.diagnostics and all(d.path == "<string>" for d in err.value.diagnostics)


def test_a_snapshot_resumes_after_a_comment_is_added_and_not_after_a_change_of_meaning() -> None:
    text = THREE_STRIKES.read_text(encoding="utf-8")
    session = escalation.loads(text).start("c-1")
    session.feed(INSULT)
    saved = json.loads(json.dumps(session.snapshot()))
    commented = escalation.loads("# a note for the next reader\n" + text.replace("\n\n", "\n\n# and another\n", 1))
    assert commented.sha256 != escalation.loads(text).sha256
    assert commented.digest == escalation.loads(text).digest
    resumed = commented.resume(saved)
    assert [ob.id for ob in resumed.obligations] == ["c-1#1"]
    changed = escalation.loads(text.replace("30s", "45s", 1))
    assert changed.digest != commented.digest
    with pytest.raises(SnapshotError, match="another policy"):
        changed.resume(saved)


def test_a_snapshot_of_the_runtimes_form_still_resumes_under_the_same_bytes() -> None:
    policy = _policy()
    session = policy.start("c-1")
    session.feed(INSULT)
    legacy = policy.unseal(session.snapshot())
    assert legacy["policy_sha256"] == policy.sha256 and "policy_digest" not in legacy
    assert [ob.id for ob in policy.resume(legacy).obligations] == ["c-1#1"]


def test_a_session_binds_to_the_first_customer_named_and_rejects_another() -> None:
    session = _policy().start("c-1")
    assert session.feed({**INSULT, "customer": ""}).customer is None
    assert session.feed({**INSULT, "customer": "k1"}).customer == "k1"
    assert session.feed(INSULT).customer == "k1"
    with pytest.raises(escalation.EventError, match='bound to customer "k1"'):
        session.feed({**INSULT, "customer": "k2"})
    with pytest.raises(escalation.EventError, match="must be a string"):
        session.feed({**INSULT, "customer": 7})
    resumed = _policy().resume(json.loads(json.dumps(session.snapshot())))
    with pytest.raises(escalation.EventError, match='bound to customer "k1"'):
        resumed.feed({**INSULT, "customer": "k2"})
