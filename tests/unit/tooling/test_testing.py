"""`escalation test`: test blocks, failure reports, `-k`, sibling files, coverage and its command-line options."""

from __future__ import annotations

import itertools
import json
import subprocess
from pathlib import Path

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import escalation_command
from escalation.check.checker import check_source
from escalation.compile.lower import CompiledPolicy, compile_policy
from escalation.tooling.coverage import Coverage, Item, compute, decisive
from escalation.tooling.testing import TestResult, collect_tests, offset_text, run_tests, selected


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*escalation_command(), *args], capture_output=True, text=True, cwd=cwd, timeout=120)


def compiled(text: str, path: str = "p.esc") -> CompiledPolicy:
    result = check_source(text, path)
    assert result.checked is not None, [d.render(text) for d in result.diagnostics]
    return compile_policy(result.checked)


def results(policy: CompiledPolicy, pattern: str | None = None) -> list[TestResult]:
    tests, broken = collect_tests(policy, policy.checked.path)
    assert broken is None
    return list(run_tests(policy, tests, pattern))


def coverage_of(text: str) -> Coverage:
    policy = compiled(text)
    return compute(policy, results(policy))


def item(cov: Coverage, rule: str, kind: str, effect: str = "") -> Item:
    found = [i for i in cov.items if i.rule == rule and i.item == kind and (not effect or effect in i.effect)]
    assert len(found) == 1, (rule, kind, effect, cov.items)
    return found[0]


MINI = """policy "Mini"
default forbid agent.hang_up
let warnings = count agent.warn
rule after_two_warnings {
  while warnings >= 2
  permit agent.hang_up
}
rule warn_on_insult {
  on customer.message[abuse == insult]
  require agent.warn within 30s
}
test "two warnings open the door" {
  agent.warn
  agent.warn
  expect permitted agent.hang_up
}
test "an insult owes a warning" {
  customer.message abuse=insult
  expect obligation agent.warn due 30s
  at 40s customer.message
  expect violation missed_deadline warn_on_insult
}
test "wrong on purpose" {
  customer.message abuse=insult
  agent.warn
  expect permitted agent.hang_up
}
"""


# ---------------------------------------------------------------- failures


def test_a_failing_expectation_names_its_step_what_was_expected_and_the_state() -> None:
    policy = compiled(MINI, "mini.esc")
    wrong = results(policy, "wrong")
    assert [r.name for r in wrong] == ["wrong on purpose"]
    (failure,) = wrong[0].failures
    assert (failure.path, failure.line) == ("mini.esc", 26)
    assert failure.step == "expect permitted agent.hang_up"
    assert failure.expected == "`agent.hang_up` permitted"
    assert "`agent.hang_up` forbidden" in failure.found and "default forbid" in failure.found
    state = failure.state
    assert (state.event, state.offset, state.line) == ("agent.warn", 1_000_000, 25)
    assert "agent.hang_up" in state.forbidden and "agent.warn" in state.permitted
    assert state.pending == () and state.violations == ()


def test_failures_show_pending_obligations_and_violations_so_far() -> None:
    text = MINI + """test "obligations and violations in the report" {
  customer.message abuse=insult
  expect no violations
  at 31s agent.hang_up
  expect no violations
  expect obligation agent.warn
}
"""
    policy = compiled(text, "mini.esc")
    (result,) = results(policy, "report")
    violations, obligation = result.failures
    assert violations.step == "expect no violations" and violations.line == 32
    assert violations.found == "missed_deadline at 31s (warn_on_insult); forbidden_action of agent.hang_up at 31s (default)"
    assert obligation.line == 33 and obligation.found == "no pending obligations"


def test_a_permission_failure_names_the_rule_that_decided_it() -> None:
    policy = compiled(MINI.replace('test "wrong', 'test "two warnings, wrongly" {\n  agent.warn\n  agent.warn\n  expect forbidden agent.hang_up\n}\ntest "wrong'))
    (result,) = results(policy, "wrongly")
    assert result.failures[0].found == "`agent.hang_up` permitted: active rule `after_two_warnings` permits it"
    assert result.failures[0].state.active == ("after_two_warnings",)


def test_expect_fired_before_any_event_and_at_the_wrong_event() -> None:
    text = MINI + 'test "fired" {\n  expect fired warn_on_insult\n  agent.warn\n  expect fired warn_on_insult\n}\n'
    (result,) = results(compiled(text), "fired")
    assert [f.found for f in result.failures] == ["no event yet", "no rule fired at `agent.warn` (line 30)"]


def test_offsets_read_like_durations() -> None:
    assert [offset_text(s * 1_000_000) for s in (0, 30, 90, 3600, 86401)] == ["0s", "30s", "1m30s", "1h", "24h1s"]
    assert offset_text(1_500_000) == "1.5s"


def test_k_selects_by_substring_or_glob_ignoring_case() -> None:
    assert selected("Two warnings open the door", "WARNINGS")
    assert selected("Two warnings open the door", "two*door")
    assert not selected("Two warnings open the door", "two*insult")
    assert selected("anything", None)
    policy = compiled(MINI)
    assert [r.name for r in results(policy, "*insult*")] == ["an insult owes a warning"]


# ---------------------------------------------------------------- coverage

BASE = 'policy "Cov"\ndefault forbid agent.hang_up\nlet warnings = count agent.warn\n'


def test_coverage_of_the_mini_policy() -> None:
    cov = coverage_of(MINI)
    assert [(i.rule, i.item, i.covered) for i in cov.items] == [
        ("after_two_warnings", "active", True),
        ("after_two_warnings", "permit", True),
        ("warn_on_insult", "fired", True),
        ("warn_on_insult", "fulfilled", True),  # by "wrong on purpose": failed tests count too
        ("warn_on_insult", "violated", True),
    ]
    by = item(cov, "warn_on_insult", "violated").by
    assert by is not None and (by.test, by.line) == ("an insult owes a warning", 20)
    assert by.when == "missed_deadline at `customer.message`"
    assert item(cov, "warn_on_insult", "fulfilled").effect == "require agent.warn within 30s"
    assert cov.percent == 100.0


def test_a_require_only_fulfilled_is_half_covered() -> None:
    cov = coverage_of(
        BASE + 'rule r {\n  on customer.message\n  require agent.warn within 30s\n}\n'
        'test "t" {\n  customer.message\n  agent.warn\n}\n'
    )
    assert [(i.item, i.covered) for i in cov.items] == [("fired", True), ("fulfilled", True), ("violated", False)]
    assert (cov.covered, cov.total) == (2, 3)
    assert round(cov.percent, 1) == 66.7


def test_an_obligation_broken_by_its_before_event_covers_violated_and_an_open_one_covers_nothing() -> None:
    text = BASE + 'rule r {\n  on customer.message\n  require agent.apologize before interaction.end\n}\n'
    open_only = coverage_of(text + 'test "open" {\n  customer.message\n}\n')
    assert [(i.item, i.covered) for i in open_only.items] == [("fired", True), ("fulfilled", False), ("violated", False)]
    broken = coverage_of(text + 'test "broken" {\n  customer.message\n  interaction.end\n}\n')
    by = item(broken, "r", "violated").by
    assert by is not None and by.when.startswith("unfulfilled")


def test_a_permit_that_never_mattered_is_uncovered() -> None:
    text = BASE + (
        "rule a {\n  while warnings >= 1\n  permit agent.hang_up\n}\n"
        "rule b {\n  while warnings >= 1\n  permit agent.hang_up\n}\n"  # always overlaps a
        "rule c {\n  while warnings >= 1\n  permit agent.warn\n}\n"  # permitted by default anyway
        'test "t" {\n  agent.warn\n  expect permitted agent.hang_up\n}\n'
    )
    cov = coverage_of(text)
    for rule in "abc":
        assert item(cov, rule, "active").covered
        assert not item(cov, rule, "permit").covered


def test_a_permit_overridden_by_a_forbid_is_uncovered_and_the_forbid_is_covered() -> None:
    cov = coverage_of(
        BASE
        + "rule p {\n  while warnings >= 1\n  permit agent.hang_up\n}\n"
        + "rule f {\n  while warnings >= 1\n  forbid agent.hang_up\n}\n"
        + 'test "t" {\n  agent.warn\n}\n'
    )
    assert not item(cov, "p", "permit").covered
    assert item(cov, "f", "forbid").covered


def test_a_forbid_of_an_action_forbidden_anyway_is_uncovered() -> None:
    cov = coverage_of(
        BASE
        + "rule f {\n  while warnings >= 1\n  forbid agent.hang_up\n  forbid agent.offer_compensation\n}\n"
        + 'test "t" {\n  agent.warn\n}\n'
    )
    assert not item(cov, "f", "forbid", "agent.hang_up").covered  # default forbid, nothing permits it
    assert item(cov, "f", "forbid", "agent.offer_compensation").covered


def test_a_rule_that_never_fires_or_holds_is_uncovered() -> None:
    cov = coverage_of(
        BASE
        + "rule on_rule {\n  on issue.resolved\n  require agent.follow_up within 48h\n}\n"
        + "rule while_rule {\n  while warnings >= 3\n  permit agent.hang_up\n}\n"
        + 'test "t" {\n  agent.warn\n}\n'
    )
    assert cov.covered == 0 and cov.total == 5 and cov.percent == 0.0
    assert cov.below(0.1) and not cov.below(0)


def test_the_state_before_the_first_event_counts_with_the_test_line() -> None:
    cov = coverage_of(
        BASE + "rule early {\n  while warnings == 0\n  permit agent.hang_up\n}\n"
        'test "no events" {\n  expect permitted agent.hang_up\n}\n'
    )
    by = item(cov, "early", "permit").by
    assert by is not None and (by.test, by.line, by.when) == ("no events", 8, "before the first event")


def test_a_permit_that_only_decided_the_judgement_of_the_action_is_covered_there() -> None:
    # active only on the history before the offer, at the offer's own time (§6 step 2)
    cov = coverage_of(
        'policy "Judged"\ndefault forbid agent.offer_compensation\n'
        "rule late_offer {\n  while seen customer.message and time since customer.message > 1m\n"
        "    and not seen agent.offer_compensation\n"
        "  permit agent.offer_compensation\n}\n"
        'test "t" {\n  customer.message\n  at 2m agent.offer_compensation\n  expect no violations\n}\n'
    )
    by = item(cov, "late_offer", "permit").by
    assert by is not None and by.line == 10 and "judged" in by.when
    assert item(cov, "late_offer", "active").covered


def test_a_policy_without_rules_is_fully_covered() -> None:
    cov = coverage_of('policy "Empty"\ntest "t" {\n  agent.warn\n}\n')
    assert cov.items == () and cov.percent == 100.0 and not cov.below(100)


def test_duplicate_effects_are_one_item_but_two_requires_are_two() -> None:
    cov = coverage_of(
        BASE
        + "rule r {\n  while warnings >= 1\n  permit agent.hang_up\n  permit agent.hang_up\n"
        + "  require agent.apologize within 1m\n  require agent.apologize within 1m\n}\n"
        + 'test "t" {\n  agent.warn\n  agent.apologize\n}\n'
    )
    assert [i.item for i in cov.items] == ["active", "permit", "fulfilled", "violated", "fulfilled", "violated"]
    assert [i.covered for i in cov.items] == [True, True, True, False, True, False]


def test_coverage_counts_only_the_tests_given() -> None:
    policy = compiled(MINI)
    cov = compute(policy, results(policy, "two warnings"))
    assert [i.covered for i in cov.items] == [True, True, False, False, False]


ACTIONS = ("agent.warn", "agent.hang_up", "agent.apologize")
_rule_effects = st.tuples(st.frozensets(st.sampled_from(ACTIONS)), st.frozensets(st.sampled_from(ACTIONS)))


@settings(max_examples=60, deadline=None)
@given(rules=st.lists(_rule_effects, min_size=1, max_size=4), defaults=st.frozensets(st.sampled_from(ACTIONS)))
def test_decisive_means_removing_the_effect_flips_the_permission(rules: list[tuple[frozenset[str], frozenset[str]]], defaults: frozenset[str]) -> None:
    """Two ways to the same answer: the coverage formula and the compiler's §6 step 6 with the effect removed."""
    lines = ['policy "P"'] + [f"default forbid {a}" for a in sorted(defaults)]
    for k, (permits, forbids) in enumerate(rules):
        effects = [f"  permit {a}" for a in sorted(permits)] + [f"  forbid {a}" for a in sorted(forbids)] or ["  forbid agent.warn"]
        lines += [f"rule r{k} {{", "  while count agent.warn >= 0", *effects, "}"]
    policy = compiled("\n".join(lines) + "\n")
    by_name = {r.name: r for r in policy.while_rules}
    for size in range(len(rules) + 1):
        for active in itertools.combinations(range(len(rules)), size):
            names = [policy.while_rules[i].name for i in active]
            allowed = set(policy.permissions(active)[0])
            for i in active:
                rule = policy.while_rules[i]
                for effect, actions in (("permit", rule.permits), ("forbid", rule.forbids)):
                    for action in actions:
                        field = "permits" if effect == "permit" else "forbids"
                        without = attrs.evolve(rule, **{field: actions - {action}})
                        changed = attrs.evolve(policy, while_rules=tuple(without if r is rule else r for r in policy.while_rules), permission_cache={})
                        flips = (action in allowed) != (action in changed.permissions(active)[0])
                        assert decisive(by_name, names, rule.name, effect, action, action in policy.default_forbid) == flips


# ---------------------------------------------------------------- the command


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_cli_reports_the_failure_with_file_line_expected_and_found(tmp_path: Path) -> None:
    policy = write(tmp_path / "mini.esc", MINI)
    proc = run("test", str(policy))
    assert proc.returncode == 1
    out = proc.stdout
    assert out.splitlines()[-1] == "2 passed, 1 failed"
    assert f"FAIL wrong on purpose ({policy}:23)" in out
    assert f"{policy}:26: expect permitted agent.hang_up" in out
    assert "expected   `agent.hang_up` permitted" in out
    assert "found      `agent.hang_up` forbidden" in out
    assert "forbidden  agent.hang_up" in out
    assert "pending    no obligations" in out


def test_cli_k_selects_tests(tmp_path: Path) -> None:
    policy = write(tmp_path / "mini.esc", MINI)
    proc = run("test", str(policy), "-k", "insult")
    assert (proc.returncode, proc.stdout.splitlines()) == (0, ["PASS an insult owes a warning", "1 passed, 0 failed"])
    proc = run("test", str(policy), "-k", "*ON PURPOSE")
    assert proc.returncode == 1 and proc.stdout.splitlines()[-1] == "0 passed, 1 failed"
    proc = run("test", str(policy), "-k", "nothing like this")
    assert proc.returncode == 0 and proc.stdout.splitlines()[-1] == "0 passed, 0 failed" and "no test name matches" in proc.stderr


def test_cli_runs_sibling_tests_and_reports_them_with_the_sibling_path(tmp_path: Path) -> None:
    policy = write(tmp_path / "mini.esc", MINI.split("test ")[0])
    sibling = write(tmp_path / "mini.test.esc", 'test "from the sibling" {\n  agent.warn\n  expect permitted agent.hang_up\n}\n')
    proc = run("test", str(policy))
    assert proc.returncode == 1
    assert f"FAIL from the sibling ({sibling}:1)" in proc.stdout
    assert f"{sibling}:3: expect permitted agent.hang_up" in proc.stdout
    assert proc.stdout.splitlines()[-1] == "0 passed, 1 failed"


def test_cli_reports_a_broken_sibling_with_its_path_and_still_runs_the_policys_tests(tmp_path: Path) -> None:
    policy = write(tmp_path / "mini.esc", MINI)
    sibling = write(tmp_path / "mini.test.esc", 'test "bad" {\n  expect permitted agent.nonsense\n}\n')
    proc = run("test", str(policy), "-k", "door")
    assert proc.returncode == 1
    assert f"{sibling}:2:" in proc.stderr
    assert proc.stdout.splitlines() == ["PASS two warnings open the door", "1 passed, 0 failed"]
    write(sibling, 'test "bad" {\n  expect\n}\n')
    proc = run("test", str(policy), "-k", "door")
    assert proc.returncode == 1 and f"{sibling}:" in proc.stderr


def test_cli_a_policy_that_does_not_load_exits_1_and_the_others_are_tested(tmp_path: Path) -> None:
    write(tmp_path / "a_broken.esc", 'policy "Broken"\nrule r {\n  while nonsense\n  permit agent.hang_up\n}\n')
    write(tmp_path / "b_mini.esc", MINI)
    proc = run("test", str(tmp_path), "-k", "door")
    assert proc.returncode == 1
    assert "a_broken.esc:3:" in proc.stderr
    assert proc.stdout.splitlines()[-1] == "1 passed, 0 failed"


def test_cli_coverage_table_and_min_coverage(tmp_path: Path) -> None:
    policy = write(tmp_path / "mini.esc", MINI)
    proc = run("test", str(policy), "-k", "door", "--coverage")
    assert proc.returncode == 0
    lines = proc.stdout.splitlines()
    assert lines[-1] == "1 passed, 0 failed"
    assert f"coverage of {policy} (Mini): 2 of 5 items, 40.0%" in lines
    row = next(line for line in lines if "permit agent.hang_up" in line)
    assert row.split()[:5] == ["after_two_warnings", "while", "permit", "agent.hang_up", "yes"] and '"two warnings open the door" (line 14)' in row
    assert any(line.split()[:3] == ["warn_on_insult", "on", "fired"] and line.split()[-1] == "no" for line in lines)

    below = run("test", str(policy), "-k", "door", "--min-coverage", "50")
    assert below.returncode == 1
    assert f"coverage of {policy} is 40.0%, below the minimum of 50%: 3 of 5 items not covered" in below.stdout
    assert below.stdout.splitlines()[-1] == "1 passed, 0 failed"
    assert run("test", str(policy), "-k", "door", "--min-coverage", "40").returncode == 0
    assert run("test", str(policy), "-k", "o", "--min-coverage", "100").returncode == 1  # full coverage, but a test fails
    assert run("test", str(policy), "--min-coverage", "101").returncode == 2


def test_cli_json_report(tmp_path: Path) -> None:
    policy = write(tmp_path / "mini.esc", MINI)
    proc = run("test", str(policy), "--format", "json", "--min-coverage", "100")
    assert proc.returncode == 1  # a test failed
    report = json.loads(proc.stdout)
    assert (report["passed"], report["failed"], report["min_coverage"], report["coverage_ok"]) == (2, 1, 100, True)
    (entry,) = report["policies"]
    assert entry["path"] == str(policy) and entry["name"] == "Mini" and entry["errors"] == []
    assert [t["passed"] for t in entry["tests"]] == [True, True, False]
    (failure,) = entry["tests"][2]["failures"]
    assert failure["line"] == 26 and failure["step"] == "expect permitted agent.hang_up"
    assert failure["state"]["forbidden"] == ["agent.hang_up"] and failure["state"]["at"] == "1s"
    cov = entry["coverage"]
    assert (cov["covered"], cov["total"], cov["percent"]) == (5, 5, 100.0)
    first = cov["items"][0]
    assert set(first) == {"rule", "kind", "item", "effect", "line", "covered", "by"}
    assert first["by"] == {"test": "two warnings open the door", "path": str(policy), "line": 14, "when": "after `agent.warn`", "contact": None}


def test_cli_json_for_a_policy_that_does_not_load(tmp_path: Path) -> None:
    broken = write(tmp_path / "broken.esc", 'policy "Broken"\nrule r {\n  while nonsense\n  permit agent.hang_up\n}\n')
    proc = run("test", str(broken), "--format", "json")
    assert proc.returncode == 1
    (entry,) = json.loads(proc.stdout)["policies"]
    assert entry["coverage"] is None and entry["tests"] == []
    assert entry["errors"][0]["line"] == 3 and entry["errors"][0]["path"] == str(broken)

