"""Customers over months: contact histories for the policies modelled on published procedures.

``generate.py --profile NAME`` uses this module for the profiles in ``CUSTOMER_PROFILES``.
Each simulated customer has several contacts (one to five) spread over about fourteen
months from September 2026, so the logs cross the new year and the public holidays of the
policies' calendars. Most customers are named on every event of a contact from its first one;
some are named only from a later event (the contact binds late, interfaces.md §1); some never
give a name (every contact anonymous, a first contact for the policy). What the staff remember
of a customer (warnings, restrictions) is what the policy sees: records of contacts that were
bound. Staff mostly do what the policy asks, in time; some duties come late or never, and now
and then someone acts when the policy forbids it, so a replay shows violations.

Steps that follow a contact by days (letters, appeals, reviews, removals) are recorded under
the contact's conversation, as the policies' headers say, so its obligations can be met there.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

CUSTOMER_START = datetime(2026, 9, 1, 8, 0, tzinfo=timezone.utc)
#: Contacts of one customer fall within this many days of the first.
SPAN_DAYS = 420

HOUR = 3600
DAY = 24 * HOUR


def _outcome(rng: random.Random, ok: float, late: float) -> str:
    r = rng.random()
    return "ok" if r < ok else "late" if r < ok + late else "skip"


@dataclass
class Memory:
    """What the organisation's records hold about one customer (only bound contacts add to it)."""

    warnings: list[datetime] = field(default_factory=list)
    withdrawals: list[datetime] = field(default_factory=list)
    letters: list[datetime] = field(default_factory=list)
    restricted_at: datetime | None = None
    restriction_ended: bool = False
    ever_restricted: bool = False
    removed: bool = False

    def within(self, times: list[datetime], now: datetime, days: int = 365) -> int:
        return sum(1 for t in times if timedelta(0) <= now - t <= timedelta(days=days))

    def restricted(self, now: datetime) -> bool:
        return self.restricted_at is not None and not self.restriction_ended and now - self.restricted_at <= timedelta(days=365)


class Contact:
    """One conversation of a customer; ``events`` holds (time, record) in time order."""

    def __init__(self, rng: random.Random, start: datetime, channel: str, known: bool) -> None:
        self.rng = rng
        self.t = start
        self.channel = channel
        #: whether this contact is bound to its customer (the staff know who it is)
        self.known = known
        self.events: list[tuple[datetime, dict[str, object]]] = []
        self.ended = False
        #: what the customer sends later in a conversation of its own: (kind, what it is against)
        self.follow_ups: list[tuple[str, str]] = []

    def emit(self, seconds: float, record: dict[str, object]) -> None:
        self.t += timedelta(seconds=seconds)
        self.events.append((self.t, record))

    def act(self, kind: str, seconds: tuple[int, int] = (2, 15), **attrs: object) -> None:
        self.emit(self.rng.randint(*seconds), {"type": kind, **attrs})

    def duty(self, kind: str, in_time: tuple[int, int], late: tuple[int, int], ok: float = 0.8, late_p: float = 0.1, **attrs: object) -> bool:
        """A duty done in time, done late, or forgotten (False)."""
        outcome = _outcome(self.rng, ok, late_p)
        if outcome == "skip":
            return False
        self.act(kind, in_time if outcome == "ok" else late, **attrs)
        return True

    def duties_together(self, kinds: tuple[str, ...], in_time: tuple[int, int], late: tuple[int, int], ok: float = 0.8, late_p: float = 0.1) -> None:
        """Several duties owed at once, each done in time, late or never, in the order they were done."""
        done = []
        for kind in kinds:
            outcome = _outcome(self.rng, ok, late_p)
            if outcome != "skip":
                done.append((self.rng.randint(*(in_time if outcome == "ok" else late)), kind))
        base = self.t
        for offset, kind in sorted(done):
            self.t = base + timedelta(seconds=offset)
            self.events.append((self.t, {"type": kind}))

    def start(self) -> None:
        self.emit(0, {"type": "interaction.start", "channel": self.channel})

    def message(self, abuse: str = "none") -> None:
        self.emit(self.rng.randint(5, 40), {"type": "customer.message", "abuse": abuse, "shouting": self.rng.random() < 0.15})

    def end(self, by: str) -> None:
        self.emit(self.rng.randint(1, 5), {"type": "interaction.end", "by": by})
        self.ended = True

    def hang_up(self) -> None:
        self.act("agent.hang_up", (1, 5))
        self.emit(0, {"type": "interaction.end", "by": "agent"})
        self.ended = True


def _abuse(rng: random.Random, temper: float, kinds: tuple[str, ...]) -> str:
    return rng.choice(kinds) if rng.random() < temper else "none"


_ABUSE = ("profanity", "insult", "insult", "harassment", "discrimination", "threat")


# -- one function per policy: (rng, contact, memory, temper) -> None -------------------------------


def headway(rng: random.Random, c: Contact, m: Memory, temper: float) -> None:
    """Headway Ireland's ladder: warn, then withdraw, then refuse, over 12 months."""
    c.start()
    now = c.t
    tier = 3 if m.within(m.withdrawals, now) else 2 if m.within(m.warnings, now) else 1
    for _ in range(rng.randint(2, 7)):
        abuse = _abuse(rng, temper, ("profanity", "insult", "insult", "harassment", "threat"))
        c.message(abuse)
        if abuse == "none":
            continue
        if rng.random() < 0.05:
            c.hang_up()  # cut off without the step the tier asks for
            return
        if tier == 1:
            if c.duty("agent.warn", (3, 25), (35, 90)):
                if c.known:
                    m.warnings.append(c.t)
                if rng.random() < 0.7:
                    c.hang_up()
                    return
        elif tier == 2:
            if rng.random() < 0.1:
                c.act("agent.warn")  # warns again instead of withdrawing the service
                continue
            if c.duty("agent.withdraw_service", (10, 50), (65, 150)):
                if c.known:
                    m.withdrawals.append(c.t)
                c.hang_up()
                return
        else:
            if c.duty("agent.refuse_to_engage", (3, 25), (35, 90)):
                if rng.random() < 0.08:
                    c.act("agent.offer_solution")  # helps after refusing
                c.hang_up()
                return
    c.act("agent.offer_solution", (5, 40))
    c.end(rng.choice(["customer", "system"]))


def glasgow(rng: random.Random, c: Contact, m: Memory, temper: float) -> None:
    """Glasgow: the handler ends abusive contacts; letters, restrictions and appeals follow by days."""
    c.start()
    abused, threat = False, False
    for _ in range(rng.randint(1, 5)):
        abuse = _abuse(rng, temper, _ABUSE)
        c.message(abuse)
        if abuse != "none":
            abused = True
            threat = threat or abuse == "threat"
            if rng.random() < 0.6:
                c.hang_up()
                break
    if not c.ended:
        if rng.random() < 0.03:
            c.act("agent.hang_up")  # ends a contact that was not abusive (or not yet)
        c.end(rng.choice(["customer", "system"]))
    if not abused:
        return
    if rng.random() < 0.02:
        c.act("agent.restrict_contact", (60, 600))  # a handler restricting on their own
    restricted = m.restricted(c.t)
    if threat and not restricted:
        if rng.random() < 0.9:
            c.act("senior.check_support_needs", (HOUR, 5 * HOUR))
        if c.duty("senior.restrict_contact", (2 * HOUR, 20 * HOUR), (3 * DAY, 6 * DAY), ok=0.75, late_p=0.15):
            _restriction_letter(rng, c, m)
        return
    if restricted:
        return
    warned = c.known and m.within(m.letters, c.t) > 0
    if warned and rng.random() < 0.6:
        if rng.random() < 0.9:
            c.act("senior.check_support_needs", (DAY, 3 * DAY))
        c.act("senior.restrict_contact", (2 * HOUR, DAY))
        _restriction_letter(rng, c, m)
        return
    if not warned:
        if c.duty("senior.send_warning_letter", (DAY, 5 * DAY), (9 * DAY, 14 * DAY), ok=0.8, late_p=0.12):
            if c.known:
                m.letters.append(c.t)
            c.act("letter.received", (DAY, 3 * DAY), letter="warning")
            _appeal(rng, c, "warning")


def _restriction_letter(rng: random.Random, c: Contact, m: Memory) -> None:
    if c.known:
        m.restricted_at, m.restriction_ended, m.ever_restricted = c.t, False, True
    if c.duty("senior.send_restriction_letter", (HOUR, 8 * HOUR), (3 * DAY, 5 * DAY), ok=0.8, late_p=0.1):
        c.act("letter.received", (DAY, 3 * DAY), letter="restriction")
        _appeal(rng, c, "restriction")


def _appeal(rng: random.Random, c: Contact, against: str) -> None:
    """Some customers appeal, in a letter of their own: a follow-up conversation (see ``Contact.follow_ups``)."""
    if rng.random() < 0.35:
        c.follow_ups.append(("appeal", against))


def york(rng: random.Random, c: Contact, m: Memory, temper: float) -> None:
    """York: a polite warning and the end of the call, the register, and restrictions for 12 months."""
    c.start()
    now = c.t
    restricted = c.known and m.restricted(now)
    if restricted and c.channel != "email" and rng.random() < 0.7:
        c.message()
        c.act("agent.ask_to_leave" if c.channel == "in_person" else "agent.hang_up", (5, 30))
        c.emit(0, {"type": "interaction.end", "by": "agent"})
        return
    acted, warned, since_warning, abused = False, False, 0, False
    for _ in range(rng.randint(2, 6)):
        abuse = _abuse(rng, temper, _ABUSE)
        c.message(abuse)
        if abuse == "none":
            continue
        abused = True
        since_warning += 1
        if c.known and m.ever_restricted and not restricted:
            c.end(rng.choice(["customer", "system"]))
            c.duty("senior.consider_reimposing", (2 * HOUR, 20 * HOUR), (3 * DAY, 6 * DAY), ok=0.7, late_p=0.2)
            return
        if c.channel == "in_person":
            c.act("agent.ask_to_leave", (5, 30))
            acted = True
            break
        if warned and since_warning >= 1 and c.channel in ("phone", "chat"):
            c.hang_up()
            acted = True
            break
        if c.channel == "phone" and not warned:
            if rng.random() < 0.05:
                c.hang_up()  # no polite warning first
                acted = True
                break
            if c.duty("agent.warn", (3, 25), (35, 90)):
                warned, since_warning = True, 0
                if c.known:
                    m.warnings.append(c.t)
        elif c.channel == "chat" and not warned:
            c.act("agent.warn", (3, 25))
            warned, since_warning = True, 0
            if c.known:
                m.warnings.append(c.t)
    if not c.ended:
        c.end(rng.choice(["customer", "system"]))
    if acted:
        c.duties_together(("agent.record_on_register", "agent.notify_manager", "agent.log_bsafe"), (HOUR, 6 * HOUR), (3 * DAY, 5 * DAY), ok=0.8, late_p=0.12)
    if abused and c.known and not restricted and m.within(m.warnings, c.t) >= 2 and rng.random() < 0.7:
        _york_restriction(rng, c, m)


def _york_restriction(rng: random.Random, c: Contact, m: Memory) -> None:
    c.act("senior.contact_customer", (DAY, 4 * DAY))
    c.act("senior.consult_cmt", (DAY, 5 * DAY))
    if rng.random() < 0.9:
        c.act("manager.consider_disability", (HOUR, DAY))
    c.act("senior.restrict_contact", (HOUR, DAY), scope=rng.choice(["writing_only", "writing_only", "no_contact"]))
    m.restricted_at, m.restriction_ended, m.ever_restricted = c.t, False, True
    parts = dict.fromkeys(("why", "what", "scope", "how_to_contact", "decided_on", "review_date", "how_to_challenge"), True)
    if rng.random() < 0.1:
        parts[rng.choice(sorted(parts))] = False  # a letter that leaves out one of the seven parts
    c.duty("senior.send_decision_letter", (HOUR, 4 * DAY), (9 * DAY, 14 * DAY), ok=0.8, late_p=0.12, **parts)
    outcome = _outcome(rng, 0.7, 0.15)
    if outcome != "skip":
        c.act("senior.review_restriction", (90 * DAY, 170 * DAY) if outcome == "ok" else (190 * DAY, 230 * DAY))
        if rng.random() < 0.5:
            if rng.random() < 0.85:
                c.act("customer.agrees_to_stop", (DAY, 10 * DAY))
            c.act("senior.lift_restriction", (HOUR, 5 * DAY))
            m.restriction_ended = True


def worksmart(rng: random.Random, c: Contact, m: Memory, temper: float) -> None:
    """WorkSmart: the handler may end an abusive call, takes time away, and is debriefed."""
    c.start()
    abused, distressing, ended = False, False, False
    for _ in range(rng.randint(2, 6)):
        abuse = _abuse(rng, temper, _ABUSE)
        c.message(abuse)
        abused = abused or abuse != "none"
        distressing = distressing or abuse in ("threat", "harassment")
        if abuse != "none" and rng.random() < 0.5:
            c.hang_up()
            ended = True
            break
    if not c.ended:
        if rng.random() < 0.03:
            c.hang_up()  # cuts off a caller who was not abusive
        else:
            c.end(rng.choice(["customer", "system"]))
    if not abused:
        return
    took = c.duty("agent.take_break", (30, 240), (6 * 60, 20 * 60), ok=0.8, late_p=0.1)
    if took or rng.random() < 0.5:
        c.act("agent.resume_calls", (5 * 60, 15 * 60) if rng.random() < 0.9 else (30, 200))
    if distressing:
        c.duty(rng.choice(["supervisor.debrief", "colleague.debrief"]), (HOUR, 6 * HOUR), (9 * HOUR, 14 * HOUR), ok=0.75, late_p=0.15)
    if ended and rng.random() < 0.015:
        c.act("manager.discipline_handler", (DAY, 3 * DAY))


def usmobile(rng: random.Random, c: Contact, m: Memory, temper: float) -> None:
    """US Mobile: in chat, warn directed swearing, end and escalate if it goes on; indecent content ends it."""
    c.start()
    chat = c.channel == "chat"
    warned = False
    for _ in range(rng.randint(2, 8)):
        if chat and rng.random() < 0.04 * (1 + temper):
            c.act("customer.sends_indecent_content", (5, 40))
            if rng.random() < 0.85:
                c.act("agent.send_canned_close", (3, 20))
            c.act("agent.hang_up", (5, 30) if rng.random() < 0.85 else (70, 200))
            c.emit(0, {"type": "interaction.end", "by": "agent"})
            _escalate(rng, c)
            return
        abuse = _abuse(rng, temper, ("profanity", "profanity", "insult", "harassment", "discrimination", "threat"))
        c.message(abuse)
        directed = abuse in ("insult", "harassment", "discrimination", "threat")
        if not directed:
            continue
        if not chat:
            if rng.random() < 0.3:
                c.hang_up()
                return
            continue
        if warned:
            if rng.random() < 0.85:
                c.act("agent.send_canned_close", (3, 20))
            c.hang_up()
            _escalate(rng, c)
            return
        if rng.random() < 0.05:
            c.hang_up()  # ends the chat without the warning
            _escalate(rng, c)
            return
        if c.duty("agent.warn", (5, 50), (65, 150)):
            warned = True
    c.act("agent.offer_solution", (5, 40))
    c.end(rng.choice(["customer", "system"]))


def _escalate(rng: random.Random, c: Contact) -> None:
    c.duty("agent.escalate", (20, 240), (6 * 60, 20 * 60), ok=0.8, late_p=0.1, to=rng.choice(["supervisor"] * 9 + ["manager"]))


def yorlmc(rng: random.Random, c: Contact, m: Memory, temper: float) -> None:
    """YORLMC: warnings, the standard eight-day route, and immediate removal after violence."""
    c.start()
    if rng.random() < 0.03 + temper / 20:
        c.act("patient.violent_incident", (10, 120))
        c.end("system")
        if rng.random() < 0.9:
            c.act("practice.report_to_police", (10 * 60, 2 * HOUR))
        c.act("practice.request_immediate_removal", (HOUR, 4 * HOUR))
        c.duty("pcse.process_removal", (2 * HOUR, 20 * HOUR), (26 * HOUR, 50 * HOUR), ok=0.8, late_p=0.15)
        c.act("pcse.remove_patient", (10 * 60, HOUR))
        c.duty("practice.send_incident_number", (DAY, 6 * DAY), (8 * DAY, 12 * DAY), ok=0.75, late_p=0.15)
        if c.known:
            m.removed = True
        return
    abused = False
    for _ in range(rng.randint(1, 4)):
        abuse = _abuse(rng, temper, ("profanity", "insult", "insult", "harassment", "discrimination"))
        c.message(abuse)
        abused = abused or abuse != "none"
    c.end(rng.choice(["customer", "system"]))
    if not abused:
        return
    warned = c.known and m.within(m.warnings, c.t) > 0
    if warned and rng.random() < 0.5:
        c.act("practice.request_removal", (DAY, 5 * DAY))
        c.act("pcse.remove_patient", (8 * DAY + HOUR, 12 * DAY) if rng.random() < 0.85 else (3 * DAY, 7 * DAY))
        m.removed = True
        return
    if not warned and rng.random() < 0.06:
        c.act("practice.request_removal", (DAY, 5 * DAY))  # no warning in the last 12 months
        return
    if rng.random() < 0.75:
        c.act("practice.warn_patient", (2 * HOUR, 3 * DAY))
        if c.known:
            m.warnings.append(c.t)


@dataclass(frozen=True)
class CustomerProfile:
    """The contact mix of one policy modelled on a published procedure."""

    policy: str
    contact: Callable[[random.Random, Contact, Memory, float], None]
    channels: tuple[str, ...]
    #: a type some other policy knows but this one does not (a rejected record)
    foreign: str


CUSTOMER_PROFILES: dict[str, CustomerProfile] = {
    "headway_abusive_contacts": CustomerProfile("policies/headway_abusive_contacts.esc", headway, ("phone", "phone", "email", "chat"), "agent.restrict_contact"),
    "glasgow_restricting_contact": CustomerProfile(
        "policies/glasgow_restricting_contact.esc", glasgow, ("phone", "phone", "in_person", "email"), "agent.withdraw_service"
    ),
    "york_customer_relations": CustomerProfile(
        "policies/york_customer_relations.esc", york, ("phone", "phone", "chat", "email", "in_person"), "senior.answer_appeal"
    ),
    "worksmart_abusive_calls": CustomerProfile("policies/worksmart_abusive_calls.esc", worksmart, ("phone",), "agent.send_canned_close"),
    "usmobile_abusive_chat": CustomerProfile("policies/usmobile_abusive_chat.esc", usmobile, ("chat", "chat", "chat", "phone"), "agent.resume_calls"),
    "yorlmc_patient_removal": CustomerProfile("policies/yorlmc_patient_removal.esc", yorlmc, ("phone", "phone", "in_person"), "senior.restrict_contact"),
}


@dataclass(frozen=True)
class Conversation:
    """The records of one conversation, each with its time, in time order."""

    cid: str
    events: list[tuple[datetime, dict[str, object]]]


def customer_conversations(name: str, customers: int, seed: int) -> list[Conversation]:
    """Every conversation of ``customers`` simulated customers under profile ``name``."""
    profile = CUSTOMER_PROFILES[name]
    rng = random.Random(f"{name}/customers/{seed}")
    out: list[Conversation] = []
    for n in range(customers):
        key = f"{name.split('_')[0]}-cust-{n:03d}"
        anonymous = rng.random() < 0.15
        temper = rng.choice([0.05, 0.15, 0.3, 0.5])
        memory = Memory()
        days = sorted(rng.sample(range(SPAN_DAYS), rng.randint(1, 5)))
        offset = timedelta(days=rng.randint(0, 60))
        follow: list[tuple[datetime, str]] = []
        for k, day in enumerate(days):
            if memory.removed:
                break
            start = CUSTOMER_START + offset + timedelta(days=day, seconds=rng.randint(0, 9 * HOUR))
            binds_late = not anonymous and rng.random() < 0.2
            contact = Contact(rng, start, rng.choice(profile.channels), known=not anonymous)
            profile.contact(rng, contact, memory, temper)
            events = contact.events
            if not anonymous:
                first = rng.randint(1, min(3, len(events) - 1)) if binds_late and len(events) > 1 else 0
                events = [(t, {**ev, "customer": key} if i >= first else ev) for i, (t, ev) in enumerate(events)]
            cid = f"{name}-{seed}-{n:03d}-{k + 1}"
            out.append(Conversation(cid, events))
            follow.extend((contact.t, against) for _kind, against in contact.follow_ups)
        for j, (after, against) in enumerate(follow):
            out.append(_appeal_conversation(rng, f"{name}-{seed}-{n:03d}-appeal{j + 1}", after, against, None if anonymous else key))
    return out


def _appeal_conversation(rng: random.Random, cid: str, after: datetime, against: str, key: str | None) -> Conversation:
    """A customer's written appeal and the council's answer (Glasgow)."""
    t = after + timedelta(seconds=rng.randint(2 * DAY, 9 * DAY) if rng.random() < 0.8 else rng.randint(25 * DAY, 40 * DAY))
    events: list[tuple[datetime, dict[str, object]]] = [(t, {"type": "appeal.received", "against": against})]
    outcome = _outcome(rng, 0.8, 0.12)
    if outcome != "skip":
        t += timedelta(seconds=rng.randint(2 * DAY, 10 * DAY) if outcome == "ok" else rng.randint(17 * DAY, 25 * DAY))
        events.append((t, {"type": "senior.answer_appeal"}))
    if key is not None:
        events = [(when, {**ev, "customer": key}) for when, ev in events]
    return Conversation(cid, events)
