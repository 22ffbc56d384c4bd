"""A seeded generator of synthetic contact-centre event streams (JSON Lines), for demos and benchmarks.

    python examples/generate.py --conversations 40 --seed 7 > examples/sample.jsonl
    python examples/generate.py --profile lv_angry_customer --conversations 24 --seed 3 --bad 4

The same seed always gives the same bytes. Conversations interleave in time order;
with ``--bad N`` that many malformed records are mixed in, so replays show rejections.

Without ``--profile`` the stream uses the standard vocabulary only (the three-strikes
mix; its output never changes). ``--profile NAME`` chooses the event mix of the policy
``policies/NAME.esc``: only the event and action types that policy knows, and agents who
mostly follow it but sometimes are late, forget a duty or act when they may not, so a
replay shows violations of every kind. ``--list-profiles`` names the profiles.

The profiles of the policies modelled on published procedures (``customers.py``) simulate
customers instead: ``--customers N`` of them, each with one to five contacts over about
fourteen months, some anonymous and some named only from a later event of a contact:

    python examples/generate.py --profile headway_abusive_contacts --customers 40 --seed 1 --bad 5
"""

from __future__ import annotations

import argparse
import heapq
import importlib.util
import json
import random
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import ModuleType

START = datetime(2026, 11, 2, 8, 0, tzinfo=timezone.utc)
ABUSE = ["none"] * 6 + ["profanity", "insult", "insult", "harassment", "discrimination", "threat"]


def _time(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def conversation(rng: random.Random, cid: str, start: datetime) -> Iterator[tuple[datetime, dict[str, object]]]:
    """One interaction: a start, some messages and agent reactions, maybe escalation, an end, aftercare."""
    t = start
    yield t, {"type": "interaction.start", "channel": rng.choice(["phone", "phone", "chat", "email"]), "customer": f"cust-{rng.randrange(10_000):04d}"}
    warnings = 0
    for _ in range(rng.randint(2, 12)):
        t += timedelta(seconds=rng.randint(3, 40))
        abuse = rng.choice(ABUSE)
        yield t, {"type": "customer.message", "abuse": abuse, "shouting": rng.random() < 0.2}
        if abuse != "none" and rng.random() < 0.85:  # most agents warn in time; some are late
            t += timedelta(seconds=rng.choice([5, 10, 20, 25, 45]))
            yield t, {"type": "agent.warn"}
            warnings += 1
        if rng.random() < 0.08:
            t += timedelta(seconds=rng.randint(1, 10))
            yield t, {"type": "customer.requests_supervisor"}
            t += timedelta(seconds=rng.choice([30, 60, 90, 200]))
            yield t, {"type": "agent.escalate", "to": rng.choice(["supervisor", "supervisor", "manager"])}
        if rng.random() < 0.1:
            t += timedelta(seconds=rng.randint(1, 20))
            yield t, {"type": "fault.determined", "party": rng.choice(["company", "employee", "customer", "third_party"])}
            if rng.random() < 0.6:
                t += timedelta(seconds=rng.randint(1, 20))
                yield t, {"type": "agent.apologize"}
    if warnings >= 2 or rng.random() < 0.15:
        t += timedelta(seconds=rng.randint(1, 10))
        yield t, {"type": "agent.hang_up"}
        yield t, {"type": "interaction.end", "by": "agent"}
    else:
        if rng.random() < 0.5:
            t += timedelta(seconds=rng.randint(5, 60))
            yield t, {"type": "issue.resolved"}
        t += timedelta(seconds=rng.randint(5, 60))
        yield t, {"type": "interaction.end", "by": rng.choice(["customer", "system"])}
    if rng.random() < 0.7:
        t += timedelta(minutes=rng.choice([2, 5, 10, 20]))
        yield t, {"type": "agent.take_break"}


BAD = [
    "this line is not JSON",
    '{"conversation": "c-bad", "time": "yesterday", "type": "agent.warn"}',
    '{"conversation": "c-bad", "time": "2026-11-02T09:00:00Z", "type": "customer.shout"}',
    '{"conversation": "c-bad", "time": "2026-11-02T09:00:00Z", "type": "customer.message", "abuse": "rude"}',
    '{"time": "2026-11-02T09:00:00Z", "type": "agent.warn"}',
    '{"conversation": "c-bad", "time": "2026-11-02T09:00:00Z", "type": "fault.determined"}',
]


def generate(conversations: int, seed: int, bad: int, spread_s: int) -> Iterator[str]:
    rng = random.Random(seed)
    streams = []
    for n in range(conversations):
        cid = f"c-{seed}-{n:05d}"
        start = START + timedelta(seconds=rng.randint(0, spread_s))
        streams.append([(t, cid, k, ev) for k, (t, ev) in enumerate(conversation(rng, cid, start))])
    bad_at = set(rng.sample(range(1, 1 + conversations * 8), bad)) if bad else set()
    for i, (t, cid, _k, ev) in enumerate(heapq.merge(*streams), 1):
        if i in bad_at:
            yield rng.choice(BAD)
        yield json.dumps({"conversation": cid, "time": _time(t), **ev})


# ---------------------------------------------------------------------------------------------
# Profiles: event mixes that exercise one policy each (``--profile NAME``).
#
# A profile knows the event and action types of its policy and a rough model of what the
# policy asks of the agent. The simulated agent mostly does the right thing, in time; a
# duty is sometimes done late or forgotten, and sometimes the agent acts when it may not.
# None of this changes the default output above, which uses its own code path.

INSULTING = {"insult", "harassment", "discrimination", "threat"}


@dataclass
class _State:
    """What a simulated agent remembers of the interaction so far."""

    channel: str
    warnings: int = 0
    abusive: int = 0
    rude: int = 0
    abuse_since_warning: int = 0
    insults_since_warning: int = 0
    profanity_since_warning: int = 0
    rude_since_warning: int = 0
    supervisor_pending: bool = False
    summarized: bool = False
    confirmed: bool = False
    offered: bool = False
    documented: bool = False
    ended: bool = False
    resolved: bool = False

    def message(self, abuse: str, shouting: bool) -> None:
        rude = abuse != "none" or shouting
        self.abusive += abuse != "none"
        self.rude += rude
        self.abuse_since_warning += abuse != "none"
        self.insults_since_warning += abuse in INSULTING
        self.profanity_since_warning += abuse == "profanity"
        self.rude_since_warning += rude

    def warned(self) -> None:
        self.warnings += 1
        self.abuse_since_warning = self.insults_since_warning = self.profanity_since_warning = self.rude_since_warning = 0


def _ground_rules(st: _State) -> bool:
    return st.warnings >= 1 and st.abuse_since_warning >= 1 and not st.supervisor_pending


def _latvian(st: _State) -> bool:
    return st.warnings >= 1 and st.rude_since_warning >= 1 and not st.supervisor_pending


def _council(st: _State) -> bool:
    return (st.warnings >= 1 and st.insults_since_warning >= 1) or (st.warnings >= 3 and st.profanity_since_warning >= 1)


def _by_channel(st: _State) -> bool:
    if st.channel == "chat":
        return st.abusive >= 1
    return st.channel in ("phone", "in_person") and st.warnings >= 1 and st.abuse_since_warning >= 1


@dataclass(frozen=True)
class Profile:
    """The event mix for one policy."""

    policy: str
    #: event and action types beyond the standard vocabulary that the policy declares
    declared: frozenset[str]
    #: optional parts of the standard vocabulary the policy gives a meaning to
    uses: frozenset[str]
    channels: tuple[str, ...]
    abuse: tuple[str, ...]
    #: which customer messages the agent is expected to answer with a warning
    warn_if: Callable[[_State, str, bool], bool] | None
    #: when the agent may end the interaction (None: the policy does not restrict it)
    may_end: Callable[[_State], bool] | None
    #: a type some other policy knows but this one does not (a rejected record)
    foreign: str
    #: how often an agent ends an interaction at an abusive message although it may not yet
    rash: float = 0.05

    def has(self, name: str) -> bool:
        return name in self.declared or name in self.uses


_MILD = ("none",) * 5 + ("profanity", "insult")
_HOT = ("none",) * 4 + ("profanity", "profanity", "insult", "insult", "harassment", "threat")

PROFILES: dict[str, Profile] = {
    "se_ten_steps": Profile(
        policy="policies/se_ten_steps.esc",
        declared=frozenset({"customer.finished_speaking", "agent.express_empathy", "agent.document", "agent.give_contact_details"}),
        uses=frozenset({"apologize_on_turn", "summary", "solution_after_summary", "resolved", "follow_up", "break", "notes"}),
        channels=("phone", "phone", "chat", "in_person"),
        abuse=_MILD,
        warn_if=None,
        may_end=None,
        foreign="customer.confirms_summary",
    ),
    "de_ground_rules": Profile(
        policy="policies/de_ground_rules.esc",
        declared=frozenset({"customer.finished_speaking", "customer.confirms_summary", "agent.offer_to_resume"}),
        uses=frozenset({"summary", "solution_after_summary", "hang_up"}),
        channels=("phone", "phone", "chat"),
        abuse=_HOT,
        warn_if=lambda st, abuse, shouting: abuse in INSULTING or (st.warnings >= 1 and abuse != "none"),
        may_end=_ground_rules,
        foreign="agent.give_contact_details",
    ),
    "lv_angry_customer": Profile(
        policy="policies/lv_angry_customer.esc",
        declared=frozenset({"customer.finished_speaking", "agent.give_verbal_feedback", "agent.express_empathy", "agent.thank"}),
        uses=frozenset({"summary", "solution_or_escalation", "fault", "supervisor", "hang_up", "break"}),
        channels=("phone", "phone", "phone", "chat"),
        abuse=_HOT,
        warn_if=lambda st, abuse, shouting: abuse != "none" or shouting,
        may_end=_latvian,
        foreign="agent.document",
    ),
    "pl_assertive_service": Profile(
        policy="policies/pl_assertive_service.esc",
        declared=frozenset({"agent.express_empathy", "agent.assure_resolution", "agent.thank", "agent.make_excuses", "agent.blame_others"}),
        uses=frozenset({"fault", "compensation", "resolved"}),
        channels=("phone", "chat", "email"),
        abuse=_HOT,
        warn_if=lambda st, abuse, shouting: abuse in INSULTING,
        may_end=None,
        foreign="customer.finished_speaking",
    ),
    "nl_professional_handling": Profile(
        policy="policies/nl_professional_handling.esc",
        declared=frozenset(
            {
                "customer.finished_speaking",
                "customer.demand",
                "agent.express_empathy",
                "agent.explain_position",
                "agent.grant_demand",
                "agent.raise_voice",
                "agent.use_offensive_language",
                "agent.document",
            }
        ),
        uses=frozenset({"document_after", "resolved"}),
        channels=("phone", "chat", "in_person"),
        abuse=_MILD,
        warn_if=None,
        may_end=None,
        foreign="agent.thank",
    ),
    "standard": Profile(
        policy="policies/standard.esc",
        declared=frozenset({"customer.finished_speaking", "agent.express_empathy", "agent.thank", "agent.document"}),
        uses=frozenset(
            {"summary", "solution_after_summary", "solution_or_escalation", "fault", "supervisor", "hang_up", "break", "document_after"}
        ),
        channels=("phone", "phone", "chat", "email"),
        abuse=_HOT,
        warn_if=lambda st, abuse, shouting: abuse in INSULTING,
        may_end=_ground_rules,
        foreign="customer.confirms_summary",
    ),
    "council_procedure": Profile(
        policy="policies/council_procedure.esc",
        declared=frozenset({"agent.announce_end", "agent.notify_manager", "agent.document"}),
        uses=frozenset({"hang_up", "record_ended"}),
        channels=("phone",),
        abuse=("none",) * 4 + ("profanity",) * 4 + ("insult", "insult", "threat"),
        warn_if=lambda st, abuse, shouting: abuse != "none",
        may_end=_council,
        foreign="customer.finished_speaking",
        rash=0.12,
    ),
    "chat_vs_phone": Profile(
        policy="policies/chat_vs_phone.esc",
        declared=frozenset({"agent.announce_end", "agent.flag_abusive", "agent.document"}),
        uses=frozenset({"hang_up", "record_ended"}),
        channels=("chat", "chat", "phone", "phone", "in_person", "email"),
        abuse=("none",) * 5 + ("profanity", "insult", "insult", "harassment", "threat"),
        warn_if=lambda st, abuse, shouting: abuse != "none" and st.channel in ("phone", "in_person"),
        may_end=_by_channel,
        foreign="customer.finished_speaking",
        rash=0.1,
    ),
}


def _duty(rng: random.Random, ok: float = 0.8, late: float = 0.1) -> str:
    """How a duty turns out: done in time ("ok"), done late ("late"), or forgotten ("skip")."""
    r = rng.random()
    return "ok" if r < ok else "late" if r < ok + late else "skip"


class _Conversation:
    """One simulated interaction under a profile; ``events`` holds (time, record) in time order."""

    def __init__(self, rng: random.Random, profile: Profile, start: datetime) -> None:
        self.rng = rng
        self.p = profile
        self.t = start
        self.events: list[tuple[datetime, dict[str, object]]] = []
        self.st = _State(rng.choice(profile.channels))

    def emit(self, seconds: int, record: dict[str, object]) -> None:
        self.t += timedelta(seconds=seconds)
        self.events.append((self.t, record))

    def act(self, kind: str, seconds: tuple[int, int] = (2, 15), **attrs: object) -> None:
        self.emit(self.rng.randint(*seconds), {"type": kind, **attrs})

    def duty(self, kind: str, in_time: tuple[int, int], late: tuple[int, int], ok: float = 0.8, late_p: float = 0.1, **attrs: object) -> bool:
        outcome = _duty(self.rng, ok, late_p)
        if outcome == "skip":
            return False
        self.act(kind, in_time if outcome == "ok" else late, **attrs)
        return True

    # -- the customer ------------------------------------------------------------------------

    def message(self, speaking: bool) -> None:
        rng, p, st = self.rng, self.p, self.st
        abuse = rng.choice(p.abuse)
        shouting = rng.random() < 0.2
        self.emit(rng.randint(5, 40), {"type": "customer.message", "abuse": abuse, "shouting": shouting})
        st.message(abuse, shouting)
        if speaking and p.has("agent.give_verbal_feedback") and st.channel == "phone" and rng.random() < 0.7:
            self.duty("agent.give_verbal_feedback", (3, 20), (35, 60), ok=0.85)
        if speaking and p.has("customer.finished_speaking") and rng.random() < 0.07:
            # talking over the customer
            self.act("agent.explain_position" if p.has("agent.explain_position") else "agent.summarize", (1, 4))
            st.summarized = st.summarized or not p.has("agent.explain_position")
        self.react(abuse, shouting)

    def react(self, abuse: str, shouting: bool) -> None:
        rng, p, st = self.rng, self.p, self.st
        if p.may_end is not None and p.may_end(st):
            if rng.random() < 0.6:
                self.end_by_agent()
                return
        elif p.has("hang_up") and abuse != "none" and rng.random() < p.rash:
            self.end_by_agent()  # ends it although the policy does not allow it yet
            return
        if p.warn_if is not None and p.warn_if(st, abuse, shouting) and self.duty("agent.warn", (3, 25), (35, 90), ok=0.8, late_p=0.1):
            st.warned()

    # -- the agent ----------------------------------------------------------------------------

    def end_by_agent(self) -> None:
        if self.p.has("agent.offer_to_resume") and self.rng.random() < 0.8:
            self.act("agent.offer_to_resume", (1, 5))
        if self.p.has("agent.announce_end") and self.rng.random() < 0.85:
            self.act("agent.announce_end", (1, 5))
        self.act("agent.hang_up", (1, 5))
        self.emit(0, {"type": "interaction.end", "by": "agent"})
        self.st.ended = True

    def offer_solution(self) -> None:
        p, st, rng = self.p, self.st, self.rng
        if st.offered:
            return
        if p.has("customer.demand"):
            reasonable = rng.random() < 0.5
            self.act("customer.demand", (5, 30), reasonable=reasonable)
            if reasonable:
                if rng.random() < 0.7:
                    self.act("agent.grant_demand")
                return
            if rng.random() < 0.12:
                self.act("agent.grant_demand")  # gives in
            if rng.random() < 0.85:
                self.act("agent.explain_position", (3, 20))
            if rng.random() < 0.85:
                self.act("agent.offer_solution", (3, 20))
            st.offered = True
            return
        waiting = (p.has("solution_after_summary") and not st.summarized) or (p.has("customer.confirms_summary") and not st.confirmed)
        if waiting and rng.random() < 0.7:
            return  # waits for the summary (or its confirmation), and so never offers one
        if p.has("solution_or_escalation") and rng.random() < 0.15:
            self.act("agent.escalate", to=rng.choice(["supervisor", "manager"]))
            st.offered = True
            return
        if rng.random() < 0.85:
            self.act("agent.offer_solution", (5, 40))
            st.offered = True

    def turn(self) -> None:
        """The customer has explained the problem; the agent acknowledges, restates and solves."""
        p, st, rng = self.p, self.st, self.rng
        if p.has("customer.finished_speaking"):
            self.act("customer.finished_speaking", (2, 20))
        if p.has("agent.express_empathy"):
            self.duty("agent.express_empathy", (3, 30), (65, 120), ok=0.8, late_p=0.1)
        if p.has("apologize_on_turn"):
            self.duty("agent.apologize", (5, 40), (65, 120), ok=0.8, late_p=0.1)
        if p.has("agent.assure_resolution") and rng.random() < 0.85:
            self.act("agent.assure_resolution")
            if rng.random() < 0.8:
                self.act(rng.choice(["agent.offer_solution", "agent.offer_solution", "agent.escalate"]), (10, 60))
            st.offered = True
        if p.has("summary"):
            if rng.random() < 0.1 and p.has("solution_after_summary"):
                self.act("agent.offer_solution")  # a solution before the summary
                st.offered = True
            if not st.summarized and rng.random() < 0.85:
                self.act("agent.summarize", (5, 30))
                st.summarized = True
            if p.has("customer.confirms_summary") and st.summarized and rng.random() < 0.8:
                self.act("customer.confirms_summary", (3, 15))
                st.confirmed = True
        self.offer_solution()
        if p.has("agent.give_contact_details") and st.offered and rng.random() < 0.8:
            self.act("agent.give_contact_details")

    def middle(self) -> None:
        """More of the conversation: messages, perhaps a supervisor, a finding of fault, a slip."""
        p, st, rng = self.p, self.st, self.rng
        for _ in range(rng.randint(0, 5)):
            if st.ended:
                return
            self.message(speaking=False)
            if st.ended:
                return
            if p.has("supervisor") and rng.random() < 0.1:
                self.act("customer.requests_supervisor", (1, 10))
                st.supervisor_pending = True
                if rng.random() < 0.05 and p.has("hang_up"):
                    self.end_by_agent()  # cuts off a customer waiting for a supervisor
                    return
                if self.duty("agent.escalate", (20, 110), (150, 300), ok=0.75, late_p=0.15, to=rng.choice(["supervisor", "manager", "supervisor"])):
                    st.supervisor_pending = False
            if p.has("fault") and rng.random() < 0.15:
                party = rng.choice(["company", "employee", "customer", "third_party"])
                self.act("fault.determined", (1, 20), party=party)
                if rng.random() < 0.7:
                    self.act("agent.apologize", (1, 20))
                if p.has("compensation") and rng.random() < 0.7:
                    self.act("agent.offer_compensation", (5, 30))
            if p.has("agent.make_excuses") and rng.random() < 0.06:
                self.act(rng.choice(["agent.make_excuses", "agent.blame_others"]))
            if p.has("agent.raise_voice") and rng.random() < 0.04:
                self.act(rng.choice(["agent.raise_voice", "agent.use_offensive_language"]))

    def close(self) -> None:
        p, st, rng = self.p, self.st, self.rng
        if not st.ended:
            if p.has("agent.thank") and rng.random() < 0.85:
                self.act("agent.thank")
            if p.has("notes") and rng.random() < 0.85:
                self.act("agent.document", (1, 10))
                st.documented = True
            resolved = p.has("resolved") and rng.random() < 0.5
            if resolved:
                self.act("issue.resolved", (5, 60))
            self.emit(rng.randint(5, 60), {"type": "interaction.end", "by": rng.choice(["customer", "system"])})
            st.resolved = resolved
        if p.has("break") and st.rude:
            self.duty("agent.take_break", (60, 540), (16 * 60, 40 * 60), ok=0.7, late_p=0.2)
        if p.has("document_after") and not (p.policy.endswith("standard.esc") and st.documented):
            self.duty("agent.document", (60, 1500), (35 * 60, 90 * 60), ok=0.8, late_p=0.1)
        if p.has("record_ended") and st.ended:
            if st.channel == "chat" and p.has("agent.flag_abusive"):
                self.duty("agent.flag_abusive", (30, 500), (15 * 60, 45 * 60), ok=0.75, late_p=0.15)
            elif st.channel != "chat":
                self.duty("agent.document", (120, 3000), (65 * 60, 3 * 3600), ok=0.75, late_p=0.15)
            if p.has("agent.notify_manager"):
                self.duty("agent.notify_manager", (3600, 20 * 3600), (26 * 3600, 40 * 3600), ok=0.75, late_p=0.15)
        if st.resolved and p.has("follow_up"):
            self.duty("agent.follow_up", (3600, 40 * 3600), (50 * 3600, 80 * 3600), ok=0.75, late_p=0.15)


def profile_conversation(rng: random.Random, profile: Profile, start: datetime) -> list[tuple[datetime, dict[str, object]]]:
    """One interaction under ``profile``: the customer explains, the agent answers, maybe it ends badly."""
    c = _Conversation(rng, profile, start)
    c.emit(0, {"type": "interaction.start", "channel": c.st.channel, "customer": f"cust-{rng.randrange(10_000):04d}"})
    for _ in range(rng.randint(1, 4)):
        c.message(speaking=True)
        if c.st.ended:
            break
    if not c.st.ended:
        c.turn()
        c.middle()
    c.close()
    return c.events


def generate_profile(name: str, conversations: int, seed: int, bad: int, spread_s: int) -> Iterator[str]:
    """Like ``generate``, with the event mix of one profile; bad records include an out-of-order event
    and a type the profile's policy does not know."""
    profile = PROFILES[name]
    rng = random.Random(f"{name}/{seed}")
    streams = []
    for n in range(conversations):
        cid = f"{name}-{seed}-{n:03d}"
        start = START + timedelta(seconds=rng.randint(0, spread_s))
        streams.append([(t, cid, k, ev) for k, (t, ev) in enumerate(profile_conversation(rng, profile, start))])
    yield from _with_bad(rng, list(heapq.merge(*streams)), bad, profile.foreign)


def _with_bad(rng: random.Random, merged: list[tuple[datetime, str, int, dict[str, object]]], bad: int, foreign: str) -> Iterator[str]:
    """The merged records as JSON lines, with ``bad`` rejected records mixed in after some of them."""
    bad_after = set(rng.sample(range(1, len(merged)), min(bad, len(merged) - 1))) if bad else set()
    for i, (t, cid, _k, ev) in enumerate(merged, 1):
        yield json.dumps({"conversation": cid, "time": _time(t), **ev})
        if i in bad_after:
            kind = rng.randrange(3)
            if kind == 0:  # an event a day before the previous one of its conversation
                yield json.dumps({"conversation": cid, "time": _time(t - timedelta(days=1)), "type": "customer.message"})
            elif kind == 1:
                yield json.dumps({"conversation": cid, "time": _time(t), "type": foreign})
            else:
                yield rng.choice(BAD)


def _customers() -> ModuleType:
    """``customers.py`` beside this file (this file also runs as a script, and is loaded by path in tests)."""
    name = "escalation_examples_customers"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("customers.py"))
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up while the class is made
        spec.loader.exec_module(module)
    return sys.modules[name]


def generate_customers(name: str, customers: int, seed: int, bad: int) -> Iterator[str]:
    """Several contacts each of ``customers`` customers over months (customers.py), in time order, with bad
    records as in ``generate_profile``."""
    module = _customers()
    rng = random.Random(f"{name}/{seed}")
    streams = [[(t, conv.cid, k, ev) for k, (t, ev) in enumerate(conv.events)] for conv in module.customer_conversations(name, customers, seed)]
    yield from _with_bad(rng, list(heapq.merge(*streams)), bad, module.CUSTOMER_PROFILES[name].foreign)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--conversations", type=int, default=40)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--bad", type=int, default=0, help="malformed records to mix in")
    ap.add_argument("--spread", type=int, default=3600, help="conversations start within this many seconds")
    customer_profiles = _customers().CUSTOMER_PROFILES
    ap.add_argument("--customers", type=int, default=40, help="customers to simulate (profiles of customers.py only)")
    ap.add_argument("--profile", choices=sorted([*PROFILES, *customer_profiles]), help="the event mix of policies/PROFILE.esc (default: the standard vocabulary)")
    ap.add_argument("--list-profiles", action="store_true", help="name each profile and the policy it exercises, then stop")
    args = ap.parse_args(argv)
    out = sys.stdout
    if args.list_profiles:
        for name in sorted([*PROFILES, *customer_profiles]):
            policy = PROFILES[name].policy if name in PROFILES else customer_profiles[name].policy
            out.write(f"{name}\t{policy}\n")
        return
    if args.profile in customer_profiles:
        lines = generate_customers(args.profile, args.customers, args.seed, args.bad)
    elif args.profile is not None:
        lines = generate_profile(args.profile, args.conversations, args.seed, args.bad, args.spread)
    else:
        lines = generate(args.conversations, args.seed, args.bad, args.spread)
    for line in lines:
        out.write(line + "\n")


if __name__ == "__main__":
    main()
