"""Which rules and effects of a policy its tests exercised.

This module only consumes test results (:class:`escalation.tooling.testing.TestResult`)
and the compiled policy; it runs nothing and prints nothing (``escalation
test`` renders the report).

Testing policies and measuring their coverage
=============================================

``escalation test POLICY... [-k PATTERN] [--coverage] [--min-coverage PCT] [--format text|json]``

runs the ``test`` blocks of each policy (files or folders; in a folder every
``*.esc`` except ``*.test.esc``) and of its sibling ``NAME.test.esc``, each in a
fresh interaction. Text output is one ``PASS name`` or ``FAIL name (file:line)``
line per test; under a failed test, one block per expectation that did not
hold: its file and line and the step as written, what was *expected*, what was
*found* (for a permission, which active rules decided it, or the default), and
the state the expectation saw: the latest event (its offset from the start of
the test and its line), the active ``while`` rules, the permitted and forbidden
actions, the pending obligations with their deadlines and rules, and every
violation so far. The last line is always ``N passed, M failed``.

``-k PATTERN`` runs only the tests whose name contains PATTERN or matches it as
a glob (``*``, ``?``, ``[...]``), both ignoring case. Coverage then counts only
the selected tests.

Exit status: 0 when every test ran and passed (also when none was selected,
with a note on standard error);
1 when a test failed, when a policy or a sibling test file does not parse or
check (its diagnostics go to standard error, the other files are still
tested; a broken sibling leaves out only the sibling's tests), or when
``--min-coverage`` is not met.

Coverage
--------

``--coverage`` adds, per policy, a table of *coverage items* and the share of
them that the tests covered. Every test that ran counts, passed or failed. The
items of a policy are, for each rule in source order:

``fired`` (an ``on`` rule)
    covered when the rule fired at some event of some test.
``active`` (a ``while`` rule)
    covered when its condition held at some *moment* of some test (below).
``permit A`` (a ``while`` rule)
    covered when, at some moment where ``A`` is considered, the rule was active
    and this ``permit`` decided that ``A`` is permitted: ``A`` was permitted,
    and without this one effect it would have been forbidden. By §6 step 6 that
    means: ``A`` has ``default forbid``, no active rule forbids ``A``, and no
    other active rule permits ``A``. A ``permit`` that only ever overlaps
    another active permit of ``A``, or that is always overridden by a
    ``forbid``, stays uncovered: no test shows that it matters.
``forbid A`` (a ``while`` rule)
    covered when, at some moment where ``A`` is considered, the rule was active
    and this ``forbid`` decided that ``A`` is forbidden: ``A`` was forbidden,
    and without this one effect it would have been permitted. That means: no
    other active rule forbids ``A``, and either ``A`` has no ``default forbid``
    or some active rule (this one included) permits ``A``.
``require ...: fulfilled`` (either kind of rule)
    covered when an obligation created by this ``require`` was fulfilled by an
    action in some test.
``require ...: violated`` (either kind of rule)
    covered when an obligation created by this ``require`` was violated in some
    test, by its deadline (``missed_deadline``) or by its ``before`` event
    (``unfulfilled``). Obligations still pending when a test ends count as
    neither.

A rule with the same ``permit A`` (or ``forbid A``) twice has one item for it;
two ``require`` effects are always two pairs of items, even when written alike.

The *moments* of a test are: (1) before its first event, on the empty history
(every action is considered); (2) after each of its events, with the rules
active then (every action is considered); (3) for an event that is an action,
the instant it is judged (§6 step 2: the ``while`` rules on the history before
it, at its own time); only that action is considered at that moment. So a
``permit A`` is also covered by a test in which ``A`` is taken and is not a
violation only thanks to it.

The percentage is covered items / all items × 100 (a policy without rules is
100% covered). Each item names the first test that covered it, in the order
the tests ran, and the line of the step where it happened (the test's own line
for the moment before the first event).

The text table has one row per item: ``rule  kind  item  covered  by``, where
*kind* is ``on`` or ``while``, *item* is ``fired``, ``active``, the effect as
written (``permit agent.hang_up``), or the ``require`` as written followed by
``: fulfilled`` or ``: violated``, *covered* is ``yes`` or ``no``, and *by*
names the test and the line (``"two warnings open the door" (line 14)``; the
file too when the test sits in the sibling file).

``--min-coverage PCT`` (0 to 100; implies ``--coverage``) makes the command
exit 1 when any policy's coverage is below PCT (compared exactly, without
rounding), printing for each such policy a line such as ``coverage of
policies/a.esc is 40.0%, below the minimum of 50%: 3 of 5 items not covered``
just before the last line. A PCT outside 0..100 is a usage error (exit 2).
``--format json`` prints one JSON object on standard output instead of text:
``{"policies": [{"path", "name", "errors", "tests": [{"name", "path", "line",
"passed", "failures": [{"path", "line", "step", "expected", "found",
"state"}]}], "coverage": {"path", "covered", "total", "percent", "items": [{"rule",
"kind", "item", "effect", "line", "covered", "by"}]}}], "passed", "failed",
"min_coverage", "coverage_ok"}`` (``min_coverage`` null without the option). There ``coverage`` is always computed (null
only for a policy that did not load, whose diagnostics are in ``errors`` and on
standard error), ``by`` is null or ``{"test", "path", "line", "when", "contact"}``, and
``state`` holds ``contact``, ``event``, ``at``, ``line``, ``active``, ``permitted``,
``forbidden``, ``pending`` and ``violations``; ``by`` also holds ``contact`` (null
unless the test has ``contact`` steps).

Tests with ``contact`` steps (language.md §7) run one interaction per contact, all
of the customer ``test``: a failure then names the contact its expectation is
about (``contact 2``), the violations so far name the contact each happened in,
and an item's ``by`` names the contact of the step that covered it
(``"second contact" (line 40, contact 2)``). Lines saying why
``--min-coverage`` failed go to standard error in this format.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import attrs

from ..compile import CompiledPolicy, WhileRule
from ..lang import ast
from ..syntax.unparse import format_span
from .testing import TestResult


@attrs.frozen(slots=True)
class Evidence:
    """Where an item was first covered: the test, the line of the step (or of the test), and its contact."""

    test: str
    path: str
    line: int
    when: str  # e.g. "after `agent.warn`", "when `agent.hang_up` was judged", "before the first event"
    contact: int | None = None  # the test's interaction the step belongs to, when the test has more than one (`contact`)

    def to_json(self) -> dict[str, Any]:
        return {"test": self.test, "path": self.path, "line": self.line, "when": self.when, "contact": self.contact}


@attrs.frozen(slots=True)
class Item:
    """One thing a test can exercise: a rule's trigger, or one outcome of one of its effects."""

    rule: str
    kind: str  # "on" | "while": the rule's kind
    item: str  # "fired" | "active" | "permit" | "forbid" | "fulfilled" | "violated"
    effect: str  # the effect as written ("permit agent.hang_up", "require agent.warn within 30s"); "" for fired/active
    line: int  # of the effect, or of the rule for fired/active
    by: Evidence | None = None
    require: int = -1  # for fulfilled/violated: the require's number in source order (RequireSpec.index)

    @property
    def key(self) -> tuple[str, str, str, int]:
        return (self.rule, self.item, self.effect, self.require)

    @property
    def covered(self) -> bool:
        return self.by is not None

    @property
    def label(self) -> str:
        if self.item in ("permit", "forbid", "fired", "active"):
            return self.effect or self.item
        return f"{self.effect}: {self.item}"

    def to_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "kind": self.kind,
            "item": self.item,
            "effect": self.effect,
            "line": self.line,
            "covered": self.covered,
            "by": self.by.to_json() if self.by is not None else None,
        }


@attrs.frozen(slots=True)
class Coverage:
    """The coverage items of one policy, each with the test that covered it (if any)."""

    path: str
    items: tuple[Item, ...]

    @property
    def covered(self) -> int:
        return sum(i.covered for i in self.items)

    @property
    def total(self) -> int:
        return len(self.items)

    @property
    def percent(self) -> float:
        return 100.0 if not self.items else 100.0 * self.covered / self.total

    def below(self, minimum: float) -> bool:
        """Whether the coverage is below ``minimum`` percent (compared exactly, without rounding)."""
        return self.covered * 100 < minimum * self.total

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "covered": self.covered,
            "total": self.total,
            "percent": round(self.percent, 2),
            "items": [i.to_json() for i in self.items],
        }


def _effect_text(source: str, effect: ast.Effect) -> str:
    if isinstance(effect, ast.Permission):
        return f"{effect.effect} {effect.action.text}"
    span = effect.span
    if source and span.end > span.start:
        return re.sub(r"\s+", " ", source[span.start : span.end]).strip()
    alternatives = " or ".join(p.event.text + ("[…]" if p.cond is not None else "") for p in effect.patterns)
    within = f" within {format_span(effect.within)}" if effect.within is not None else ""
    before = f" before {effect.before.text}" if effect.before is not None else ""
    return f"require {alternatives}{within}{before}"


def coverage_items(policy: CompiledPolicy) -> list[Item]:
    """Every coverage item of ``policy``, uncovered, in source order."""
    source = policy.checked.source
    items: list[Item] = []
    requires = 0
    for rule in policy.checked.policy.rules:
        name = rule.name.text
        kind = "while" if isinstance(rule.trigger, ast.While) else "on"
        items.append(Item(name, kind, "active" if kind == "while" else "fired", "", rule.span.line))
        seen: set[tuple[str, str]] = set()
        for effect in rule.effects:
            text = _effect_text(source, effect)
            if isinstance(effect, ast.Permission):
                key = (effect.effect, effect.action.text)
                if key not in seen:
                    seen.add(key)
                    items.append(Item(name, kind, effect.effect, text, effect.span.line))
            else:
                spec = policy.requires[requires]
                assert spec.rule == name, "the compiler numbers require effects in source order"
                items.append(Item(name, kind, "fulfilled", text, effect.span.line, require=spec.index))
                items.append(Item(name, kind, "violated", text, effect.span.line, require=spec.index))
                requires += 1
    return items


def decisive(rules: dict[str, WhileRule], active: Iterable[str], rule: str, effect: str, action: str, default_forbid: bool) -> bool:
    """Whether ``effect`` (permit or forbid) of ``rule`` decided ``action`` with ``active`` rules (§6 step 6).

    Decided means: the rule is active, and removing just this effect from it
    would flip the action between permitted and forbidden.
    """
    names = list(active)
    if rule not in names:
        return False
    other_forbids = any(action in rules[n].forbids for n in names if n != rule)
    other_permits = any(action in rules[n].permits for n in names if n != rule)
    own = rules[rule]
    if effect == "permit":
        return action in own.permits and default_forbid and not other_forbids and action not in own.forbids and not other_permits
    return action in own.forbids and not other_forbids and (not default_forbid or other_permits or action in own.permits)


def compute(policy: CompiledPolicy, results: Iterable[TestResult], path: str | None = None) -> Coverage:
    """Coverage of ``policy`` by ``results`` (the tests that ran, in order)."""
    items = coverage_items(policy)
    found: dict[tuple[str, str, str, int], Evidence] = {}  # Item.key -> first evidence
    rules = {r.name: r for r in policy.while_rules}
    permissions = [(r.name, "permit", a) for r in policy.while_rules for a in sorted(r.permits)] + [
        (r.name, "forbid", a) for r in policy.while_rules for a in sorted(r.forbids)
    ]
    require_effect = {i.require: i.effect for i in items if i.require >= 0}

    def note(key: tuple[str, str, str, int], evidence: Evidence) -> None:
        found.setdefault(key, evidence)

    def moment(result: TestResult, line: int, when: str, active: tuple[str, ...], actions: Iterable[str] | None, contact: int | None) -> None:
        for name in active:
            note((name, "active", "", -1), Evidence(result.name, result.path, line, when, contact))
        wanted = None if actions is None else set(actions)
        for rule, effect, action in permissions:
            if (wanted is None or action in wanted) and decisive(rules, active, rule, effect, action, action in policy.default_forbid):
                note((rule, effect, f"{effect} {action}", -1), Evidence(result.name, result.path, line, when, contact))

    for result in results:
        several = result.contacts > 1
        moment(result, result.line, "before the first event", result.initial_active, None, 1 if several else None)
        made: dict[str, int] = {}  # obligation id -> RequireSpec.index
        for played in result.played:
            d, etype = played.decision, played.event.type
            contact = played.contact if several else None
            if played.judged is not None:
                moment(result, played.line, f"when `{etype}` was judged", played.judged, (etype,), contact)
            moment(result, played.line, f"after `{etype}`", d.active, None, contact)
            evidence = Evidence(result.name, result.path, played.line, f"at `{etype}`", contact)
            for name in d.fired:
                note((name, "fired", "", -1), evidence)
            for ob_id in d.fulfilled:
                spec = policy.requires[made[ob_id]]
                note((spec.rule, "fulfilled", require_effect[spec.index], spec.index), evidence)
            for v in d.violations:
                if v.obligation is not None and v.obligation in made:
                    spec = policy.requires[made[v.obligation]]
                    note((spec.rule, "violated", require_effect[spec.index], spec.index), attrs.evolve(evidence, when=f"{v.kind} at `{etype}`"))
            for ob in d.created:
                made[ob.id] = ob.spec.index

    covered = tuple(attrs.evolve(i, by=found.get(i.key)) for i in items)
    return Coverage(path if path is not None else policy.checked.path, covered)
