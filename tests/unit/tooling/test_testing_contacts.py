"""Tests in policies with `from "TIME"`, `contact` and `expect obligation A due "TIME"` (language.md §7)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from conftest import escalation_command
from escalation.check.checker import check_source
from escalation.compile.lower import CompiledPolicy, compile_policy
from escalation.tooling.coverage import compute
from escalation.tooling.testing import TestResult, collect_tests, run_tests

POLICY = """policy "Letters"

action agent.send_letter

rule letter_after_warning {
  on agent.warn
  require agent.send_letter within 2d
}

rule hang_up_after_abuse {
  while seen customer.message[abuse != none]
  permit agent.hang_up
}

default forbid agent.hang_up

test "a letter is owed, due two days after the warning" from "2026-12-18T15:00:00Z" {
  agent.warn
  expect obligation agent.send_letter due "2026-12-20T15:00:00Z"
  expect obligation agent.send_letter due 2d
  customer.message abuse=insult
  expect permitted agent.hang_up
  contact
  expect forbidden agent.hang_up
  at 1h customer.message abuse=none
  expect forbidden agent.hang_up
  at 3d agent.send_letter
  expect no violations
}

test "each contact owes its own letter" {
  agent.warn
  contact
  at 1h agent.warn
  at 1h agent.send_letter
  at 3d customer.message
  expect violation missed_deadline letter_after_warning
  expect obligation agent.send_letter
  expect fired letter_after_warning
}
"""


def _compiled(text: str, path: str = "p.esc") -> CompiledPolicy:
    result = check_source(text, path)
    assert result.checked is not None, [d.message for d in result.diagnostics]
    return compile_policy(result.checked, text.encode("utf-8"))


def _results(policy: CompiledPolicy) -> list[TestResult]:
    tests, broken = collect_tests(policy, policy.checked.path)
    assert broken is None
    return list(run_tests(policy, tests))


def test_from_contact_and_due_time() -> None:
    first, second = _results(_compiled(POLICY))
    assert first.contacts == 2 and [p.contact for p in first.played] == [1, 1, 2, 2]
    assert [p.event.conversation for p in first.played] == ["test", "test", "test-2", "test-2"]
    assert first.played[0].event.raw["time"] == "2026-12-18T15:00:00Z"
    # the first contact's obligation stays pending there: only its own events fulfil or break it
    assert first.failures == ()
    # contact 2 fulfilled its own letter; contact 1's passed its deadline but had no later event, so no violation
    texts = [(f.line, f.step, f.state.contact, f.found) for f in second.failures]
    assert texts == [
        (37, "expect violation missed_deadline letter_after_warning", 2, "no violations so far"),
        (38, "expect obligation agent.send_letter", 2, "no pending obligations"),
        (39, "expect fired letter_after_warning", 2, "no rule fired at `customer.message` (line 36)"),
    ]


def test_failures_and_coverage_name_the_contact(tmp_path: Path) -> None:
    path = tmp_path / "letters.esc"
    path.write_text(POLICY, encoding="utf-8")
    proc = subprocess.run([*escalation_command(), "test", str(path), "--coverage"], capture_output=True, text=True)
    out = proc.stdout
    assert f"{path}:39: expect fired letter_after_warning (contact 2)" in out
    assert '"each contact owes its own letter" (line 35, contact 2)' in out
    policy = _compiled(POLICY, str(path))
    by = {i.label: i.by for i in compute(policy, _results(policy), str(path)).items}
    fulfilled = by["require agent.send_letter within 2d: fulfilled"]
    assert fulfilled is not None and fulfilled.to_json()["contact"] == 2


def test_a_test_without_contacts_names_none() -> None:
    (result,) = _results(_compiled('policy "p"\n\ntest "t" {\n  agent.warn\n  expect permitted agent.hang_up\n}\n'))
    assert result.contacts == 1 and result.failures == ()
    assert result.played[0].event.raw["time"] == "2026-01-05T09:00:00Z"


CASE_43 = Path(__file__).resolve().parents[4] / "shared" / "conformance" / "cases" / "43_test_blocks_with_contacts" / "policy.esc"


def test_contacts_share_the_customer_history_of_test() -> None:
    text = CASE_43.read_text(encoding="utf-8")
    results = _results(_compiled(text, str(CASE_43)))
    assert [r.passed for r in results] == [True, True, True]
    second = results[1]
    assert [p.event.conversation for p in second.played] == ["test", "test", "test-2", "test-2"]
    # the second contact read the first's warning: without it (no warning before `contact`) the expectation fails there
    broken = text.replace("  agent.warn\n  contact\n  at 1h", "  contact\n  at 1h", 1)
    failed = _results(_compiled(broken, str(CASE_43)))[1]
    assert [(f.step, f.state.contact) for f in failed.failures][:2] == [
        ("expect permitted agent.hang_up", 2),
        ('expect obligation agent.send_letter due "2026-12-24T00:00:00Z"', 2),
    ]
