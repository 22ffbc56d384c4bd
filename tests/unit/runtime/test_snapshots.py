"""A snapshot is untrusted input: resume accepts what an interaction could have written, and nothing else.

Hand-edited snapshots (negative or float counts, obligations from the future, a spec
index of -1, a rule forced active, wrong types, extra or missing keys) raise
SnapshotError with a sentence naming the field, and change nothing. Random one-field
mutations of real snapshots, taken after random events on the shipped policies, are
either refused with SnapshotError or resume to an interaction that holds exactly what
the snapshot says and behaves as a valid one; no other exception, ever.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import escalation
from conftest import ROOT
from escalation import SnapshotError, check_source
from escalation.audit import obligation_json, violation_json
from escalation.compile import CompiledPolicy, compile_policy
from escalation.lang.units import US, format_time
from escalation.runtime.events import Event, validate
from escalation.runtime.interaction import Decision, Interaction
from escalation.tooling.format import format_expr
from helpers.policies import WINDOWED
from helpers.policy_strategies import BASE_TIME, event_records, mentioned

SHIPPED = sorted(p for p in (ROOT / "policies").glob("*.esc") if not p.name.endswith(".test.esc"))
_POLICIES: dict[str, CompiledPolicy] = {}


def _compiled(name: str) -> CompiledPolicy:
    if name not in _POLICIES:
        if name == "windowed":
            result = check_source(WINDOWED)
            assert result.checked is not None
            _POLICIES[name] = compile_policy(result.checked, WINDOWED.encode("utf-8"))
        else:
            _POLICIES[name] = escalation.load(str(ROOT / "policies" / f"{name}.esc")).compiled
    return _POLICIES[name]


def _event(policy: CompiledPolicy, seconds: float, etype: str, **attrs: Any) -> Event:
    record = {"conversation": "c1", "time": format_time(BASE_TIME + round(seconds * US)), "type": etype, **attrs}
    return validate(record, policy.vocabulary)


def _slot(policy: CompiledPolicy, kind: str, nth: int = 0) -> int:
    return [i for i, op in enumerate(policy.ops) if op.kind == kind][nth]


def _view(d: Decision) -> tuple[Any, ...]:
    return (
        d.time,
        d.type,
        [violation_json(v) for v in d.violations],
        list(d.fulfilled),
        [obligation_json(o) for o in d.created],
        list(d.fired),
        list(d.active),
        list(d.permitted_actions),
        list(d.forbidden_actions),
        [obligation_json(o) for o in d.obligations],
    )


def _three_strikes_snapshot() -> tuple[CompiledPolicy, dict[str, Any]]:
    """After an insult, a request for a supervisor and the company's fault: three obligations, two while rules active."""
    policy = _compiled("three_strikes")
    inter = Interaction(policy, "c1")
    inter.feed(_event(policy, 0, "customer.message", abuse="insult"))
    inter.feed(_event(policy, 5, "customer.requests_supervisor"))
    inter.feed(_event(policy, 10, "fault.determined", party="company"))
    snap = json.loads(json.dumps(inter.snapshot()))
    assert [row[1] for row in snap["pending"]] == [0, 1, 2]  # warn_on_abuse (30s), supervisor_on_request (2m), apologise (no within)
    assert snap["active"] == ["no_hang_up_before_supervisor", "apologise_when_at_fault"]
    return policy, snap


def _windowed_snapshot() -> tuple[CompiledPolicy, dict[str, Any]]:
    """Three abusive messages in a window and a warning: window, `time since` and count slots all hold something."""
    policy = _compiled("windowed")
    inter = Interaction(policy, "c1")
    for t in (0, 1, 2):
        inter.feed(_event(policy, t, "customer.message", abuse="profanity"))
    inter.feed(_event(policy, 3, "agent.warn"))
    snap = json.loads(json.dumps(inter.snapshot()))
    assert len(snap["state"][_slot(policy, "wcount")]) == 3
    assert snap["state"][_slot(policy, "time")] is not None
    assert snap["active"] == ["busy_line"]
    return policy, snap


Edit = Callable[[dict[str, Any], CompiledPolicy], None]


def _set_slot(kind: str, value: Any) -> Edit:
    """Set the first slot of ``kind`` to ``value`` (or to ``value(snapshot)`` when it is callable)."""

    def edit(s: dict[str, Any], p: CompiledPolicy) -> None:
        s["state"][_slot(p, kind)] = value(s) if callable(value) else value

    return edit


def _set_row(j: int, k: int, value: Callable[[list[Any], dict[str, Any]], Any]) -> Edit:
    def edit(s: dict[str, Any], p: CompiledPolicy) -> None:
        s["pending"][j][k] = value(s["pending"][j], s)

    return edit


def _set(key: str, value: Callable[[dict[str, Any]], Any]) -> Edit:
    def edit(s: dict[str, Any], p: CompiledPolicy) -> None:
        s[key] = value(s)

    return edit


def _delete(key: str) -> Edit:
    def edit(s: dict[str, Any], p: CompiledPolicy) -> None:
        del s[key]

    return edit


def _window(value: Callable[[list[int], dict[str, Any]], Any]) -> Edit:
    def edit(s: dict[str, Any], p: CompiledPolicy) -> None:
        i = _slot(p, "wcount")
        s["state"][i] = value(list(s["state"][i]), s)

    return edit


#: (id, snapshot, edit, a fragment the message must hold: the field it names)
HAND_EDITS: list[tuple[str, str, Edit, str]] = [
    ("negative-count", "three", _set_slot("count", -1), "`state[0]`"),
    ("float-count", "three", _set_slot("count", 1.0), "`state[0]`"),
    ("fractional-count", "three", _set_slot("count", 0.5), "`state[0]`"),
    ("bool-count", "three", _set_slot("count", True), "`state[0]`"),
    ("string-count", "three", _set_slot("count", "1"), "`state[0]`"),
    ("nan-count", "three", _set_slot("count", math.nan), "`state[0]`"),
    ("huge-count", "three", _set_slot("count", 2**64), "`state[0]`"),
    ("last-not-a-member", "three", _set_slot("last", "nobody"), "`state[3]`"),
    ("last-wrong-type", "three", _set_slot("last", 3), "`state[3]`"),
    ("state-not-a-list", "three", _set("state", lambda s: {"0": 1}), "`state`"),
    ("state-too-long", "three", _set("state", lambda s: [*s["state"], 0]), "`state`"),
    ("conversation-not-a-string", "three", _set("conversation", lambda s: 7), "`conversation`"),
    ("conversation-null", "three", _set("conversation", lambda s: None), "`conversation`"),
    ("last_time-float", "three", _set("last_time", lambda s: s["last_time"] + 0.5), "`last_time`"),
    ("last_time-string", "three", _set("last_time", lambda s: format_time(s["last_time"])), "`last_time`"),
    ("last_time-out-of-range", "three", _set("last_time", lambda s: 10**20), "`last_time`"),
    ("obligation-from-the-future", "three", _set_row(0, 2, lambda r, s: s["last_time"] + 1), "`pending[0]` created_at"),
    ("spec-index-minus-one", "three", _set_row(0, 1, lambda r, s: -1), "`pending[0]` spec"),
    ("spec-index-too-large", "three", _set_row(0, 1, lambda r, s: 5), "`pending[0]` spec"),
    ("spec-index-float", "three", _set_row(0, 1, lambda r, s: 0.0), "`pending[0]` spec"),
    ("spec-index-of-another-deadline", "three", _set_row(0, 1, lambda r, s: 3), "`pending[0]` due"),
    ("n-negative", "three", _set_row(0, 0, lambda r, s: -3), "`pending[0]` number n"),
    ("n-float", "three", _set_row(0, 0, lambda r, s: 1.5), "`pending[0]` number n"),
    ("n-twice", "three", _set_row(1, 0, lambda r, s: s["pending"][0][0]), "`pending[1]` number n"),
    ("created-float", "three", _set_row(0, 2, lambda r, s: r[2] + 0.25), "`pending[0]` created_at"),
    ("due-before-created", "three", _set_row(0, 3, lambda r, s: r[2] - 1), "`pending[0]` due"),
    ("due-not-the-deadline", "three", _set_row(1, 3, lambda r, s: r[3] + 10**12), "`pending[1]` due"),
    ("due-null-with-a-deadline", "three", _set_row(0, 3, lambda r, s: None), "`pending[0]` due"),
    ("due-without-a-deadline", "three", _set_row(2, 3, lambda r, s: r[2] + US), "`pending[2]` due"),
    ("due-float", "three", _set_row(0, 3, lambda r, s: float(r[3])), "`pending[0]` due"),
    ("row-too-short", "three", _set("pending", lambda s: [s["pending"][0][:3]]), "`pending[0]`"),
    ("pending-not-a-list", "three", _set("pending", lambda s: "c1#1"), "`pending`"),
    ("next_n-zero", "three", _set("next_n", lambda s: 0), "`next_n`"),
    ("next_n-reused", "three", _set("next_n", lambda s: 3), "`next_n`"),
    ("next_n-float", "three", _set("next_n", lambda s: 4.0), "`next_n`"),
    ("rule-forced-active", "three", _set("active", lambda s: [*s["active"], "threats_end_the_call"]), "`threats_end_the_call`"),
    ("rule-left-out", "three", _set("active", lambda s: s["active"][:1]), "`apologise_when_at_fault`"),
    ("active-an-on-rule", "three", _set("active", lambda s: ["warn_on_abuse"]), "`active[0]`"),
    ("active-twice", "three", _set("active", lambda s: [*s["active"], s["active"][0]]), "`active`"),
    ("active-not-a-list", "three", _set("active", lambda s: "apologise_when_at_fault"), "`active`"),
    ("extra-key", "three", _set("note", lambda s: "edited"), "'note'"),
    ("missing-key", "three", _delete("next_n"), "`next_n`"),
    ("format", "three", _set("format", lambda s: "escalation-snapshot/2"), "format"),
    ("sha256", "three", _set("policy_sha256", lambda s: "0" * 64), "sha256"),
    ("window-out-of-order", "windowed", _window(lambda w, s: w[::-1]), "ascending"),
    ("window-entry-from-the-future", "windowed", _window(lambda w, s: [*w, s["last_time"] + 1]), "later than its latest event"),
    ("window-entry-float", "windowed", _window(lambda w, s: [float(w[0]), *w[1:]]), "[0]`"),
    ("window-not-a-list", "windowed", _window(lambda w, s: len(w)), "a list of event times"),
    ("time-since-from-the-future", "windowed", _set_slot("time", lambda s: s["last_time"] + 1), "later than its latest event"),
    ("time-since-a-string", "windowed", _set_slot("time", "2026-11-22T10:00:03Z"), "integer time"),
]


@pytest.mark.parametrize(("snapshot", "edit", "field"), [pytest.param(s, e, f, id=i) for i, s, e, f in HAND_EDITS])
def test_a_hand_edited_snapshot_is_refused_with_a_sentence_naming_the_field(snapshot: str, edit: Edit, field: str) -> None:
    policy, snap = _three_strikes_snapshot() if snapshot == "three" else _windowed_snapshot()
    Interaction.resume(policy, copy.deepcopy(snap))  # the unedited snapshot resumes
    edit(snap, policy)
    before = copy.deepcopy(snap)
    with pytest.raises(SnapshotError) as info:
        Interaction.resume(policy, snap)
    message = str(info.value)
    assert field in message, message
    assert "\n" not in message and message[0].islower() and "Traceback" not in message
    assert snap == before, "resume changed the snapshot it was given"


def test_a_snapshot_taken_before_any_event_holds_only_initial_values() -> None:
    policy = _compiled("three_strikes")
    fresh = json.loads(json.dumps(Interaction(policy, "c1").snapshot()))
    assert Interaction.resume(policy, fresh).snapshot() == fresh
    edits: list[tuple[str, Any, str]] = [
        ("state", [1, *fresh["state"][1:]], "records no event yet"),
        ("pending", [[1, 2, BASE_TIME, None]], "records no event yet"),
        ("next_n", 2, "records no event yet"),
        ("active", ["apologise_when_at_fault"], "before the first event no while rule is"),
    ]
    for key, value, fragment in edits:
        with pytest.raises(SnapshotError, match=fragment):
            Interaction.resume(policy, {**fresh, key: value})


def test_the_active_rules_are_recomputed_from_the_state() -> None:
    """Which while rules are active is a function of the state and the latest time (§6); an edited state moves them."""
    policy, snap = _three_strikes_snapshot()
    threats = next(i for i, op in enumerate(policy.ops) if op.source is not None and format_expr(op.source) == "count customer.message[abuse == threat]")
    snap["state"][threats] = 1
    with pytest.raises(SnapshotError, match="threats_end_the_call"):  # the state now makes it active; `active` must say so
        Interaction.resume(policy, snap)
    snap["active"] = ["threats_end_the_call", *snap["active"]]  # any order, each once
    resumed = Interaction.resume(policy, snap)
    assert [policy.while_rules[k].name for k in resumed.active] == ["threats_end_the_call", "no_hang_up_before_supervisor", "apologise_when_at_fault"]
    assert "agent.hang_up" in resumed.permissions()[1]  # threats permit it, but the supervisor rule forbids it


def test_a_refused_snapshot_leaves_the_session_untouched() -> None:
    policy = escalation.load(str(ROOT / "policies" / "three_strikes.esc"))
    session = policy.start("c1")
    session.feed({"time": "2026-11-22T10:00:00Z", "type": "customer.message", "abuse": "insult"})
    good = session.snapshot()
    bad = {**copy.deepcopy(good), "pending": [[1, -1, good["last_time"], None]]}
    with pytest.raises(SnapshotError):
        policy.resume(bad)
    assert session.snapshot() == good
    nxt = {"time": "2026-11-22T10:00:10Z", "type": "agent.warn"}
    assert _view(session.feed(nxt)) == _view(policy.resume(good).feed(nxt))


def test_a_resumed_interaction_shares_nothing_with_the_snapshot() -> None:
    policy, snap = _windowed_snapshot()
    resumed = Interaction.resume(policy, snap)
    taken = resumed.snapshot()
    snap["state"][_slot(policy, "wcount")].append(snap["last_time"])
    snap["pending"].clear()
    snap["active"].clear()
    assert resumed.snapshot() == taken


# -------------------------------------------------------------------------- mutations of real snapshots

_NAMES = [p.stem for p in SHIPPED] + ["windowed"]
_NAN = math.nan


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a snapshot: the keys, the list elements, and the elements of nested lists."""
    out = [path]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*path, i))
    return out


def _get(snap: Any, path: tuple[Any, ...]) -> Any:
    for k in path:
        snap = snap[k]
    return snap


#: Mutations whose result no interaction can write: resume must refuse them.
ALWAYS_REFUSED = {"float", "fraction", "nan", "inf", "-inf", "extra key", "missing key", "renamed key"}


def _mutations(value: Any, top: bool) -> list[str]:
    kinds = ["null", "true", "false", "string", "empty list", "object", "zero", "one", "minus one", "nan", "inf", "-inf", "huge", "-huge", "2**63"]
    if isinstance(value, int) and not isinstance(value, bool):
        kinds += ["negative", "float", "fraction", "plus one", "minus one from it", "times 10**9"]
    if isinstance(value, list):
        kinds += ["append", "pop", "duplicate first", "reverse"]
        if value and isinstance(value[0], int):
            kinds += ["float"]
    if top:
        kinds += ["extra key", "missing key", "renamed key"]
    return kinds


def _mutate(snap: dict[str, Any], path: tuple[Any, ...], kind: str) -> dict[str, Any]:
    out = copy.deepcopy(snap)
    if kind in ("extra key", "missing key", "renamed key"):
        key = path[0] if path else "format"
        if kind == "extra key":
            out["extra"] = out[key]
        elif kind == "missing key":
            del out[key]
        else:
            out[key.upper() if key != key.upper() else key + "_"] = out.pop(key)
        return out
    value = _get(out, path)
    replacements: dict[str, Callable[[], Any]] = {
        "null": lambda: None,
        "true": lambda: True,
        "false": lambda: False,
        "string": lambda: str(value),
        "empty list": lambda: [],
        "object": lambda: {"v": value},
        "zero": lambda: 0,
        "one": lambda: 1,
        "minus one": lambda: -1,
        "nan": lambda: _NAN,
        "inf": lambda: math.inf,
        "-inf": lambda: -math.inf,
        "huge": lambda: 10**30,
        "-huge": lambda: -(10**30),
        "2**63": lambda: 2**63,
        "negative": lambda: -value - 1,
        "float": lambda: float(value) if not isinstance(value, list) else [float(value[0]), *value[1:]],
        "fraction": lambda: value + 0.5,
        "plus one": lambda: value + 1,
        "minus one from it": lambda: value - 1,
        "times 10**9": lambda: value * 10**9,
        "append": lambda: [*value, value[-1] if value else 0],
        "pop": lambda: value[:-1],
        "duplicate first": lambda: [value[0], *value] if value else [0],
        "reverse": lambda: value[::-1],
    }
    new = replacements[kind]()
    if not path:
        return new  # type: ignore[no-any-return]  # the whole snapshot replaced
    _get(out, path[:-1])[path[-1]] = new
    return out


def _continue(inter: Interaction, events: list[Event], interpreted: bool) -> list[Any]:
    """Feed ``events`` as a Session would (an event earlier than the previous one is rejected), snapshotting after each."""
    out: list[Any] = []
    for e in events:
        if inter.last_time is not None and e.time < inter.last_time:
            out.append("earlier")
            continue
        d = inter.feed_interpreted(e) if interpreted else inter.feed(e)
        out.append((_view(d), inter.snapshot()))
    return out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.data())
def test_a_mutated_snapshot_is_refused_or_behaves_as_a_valid_one(data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(_NAMES), label="policy")
    policy = _compiled(name)
    text = policy.checked.source
    records = data.draw(event_records(policy.vocabulary, "c1", max_events=16, prefer=mentioned(text, policy.vocabulary)), label="events")
    events = [validate(r, policy.vocabulary) for r in records]
    cut = data.draw(st.integers(0, len(events)), label="snapshot after")
    whole = Interaction(policy, "c1")
    expected = [_view(whole.feed(e)) for e in events]
    first = Interaction(policy, "c1")
    for e in events[:cut]:
        first.feed(e)
    snap = json.loads(json.dumps(first.snapshot()))

    # unmutated: snapshot -> resume -> continue equals the uninterrupted run
    resumed = Interaction.resume(policy, copy.deepcopy(snap))
    assert [_view(resumed.feed(e)) for e in events[cut:]] == expected[cut:]
    assert resumed.snapshot() == whole.snapshot()

    path = data.draw(st.sampled_from(_paths(snap)), label="path")
    kind = data.draw(st.sampled_from(_mutations(_get(snap, path), top=len(path) <= 1)), label="mutation")
    mutated = _mutate(snap, path, kind)
    given_ = copy.deepcopy(mutated)
    try:
        inter = Interaction.resume(policy, mutated)
    except SnapshotError as err:
        event("refused")
        message = str(err)
        assert message and "\n" not in message
        assert mutated == given_ or (isinstance(mutated, float) and math.isnan(mutated))  # nothing changed, not even the input
        return
    assert kind not in ALWAYS_REFUSED, f"{kind} at {path} was accepted"
    event("accepted")
    assert mutated == given_
    # it holds exactly what the snapshot says (nothing coerced, dropped or made up) ...
    assert inter.snapshot() == mutated
    # ... and behaves as a valid interaction: the two back ends agree on every later event, and
    # every later snapshot is itself valid and resumes to the same state
    shift = (events[-1].time - events[0].time + 3600 * US) if events else 0
    later = [*events[cut:], *(Event(e.conversation, e.time + shift, e.type, e.attrs) for e in events)]
    twin = Interaction.resume(policy, copy.deepcopy(mutated))
    fed = _continue(inter, later, interpreted=False)
    assert fed == _continue(twin, later, interpreted=True)
    for step in fed:
        if step != "earlier":
            assert Interaction.resume(policy, json.loads(json.dumps(step[1]))).snapshot() == step[1]


def test_the_shipped_policies_are_all_covered() -> None:
    assert len(SHIPPED) >= 9 and all(Path(p).exists() for p in SHIPPED)
