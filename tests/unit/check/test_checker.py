"""The checker: each diagnostic code fires where it should, with a useful hint, and valid policies pass."""

from __future__ import annotations

import pytest

from escalation import check_source

HEADER = 'policy "t"\n'


def codes(text: str) -> list[str]:
    return [d.code for d in check_source(HEADER + text, "t.esc").diagnostics]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("rule r {\n on customer.mesage\n require agent.warn within 1m\n}", "E010"),
        ("rule r {\n while nothing_here\n forbid agent.hang_up\n}", "E011"),
        ("let x = last part of fault.determined else customer\nrule r {\n while x == customer\n forbid agent.hang_up\n}", "E012"),
        ("rule r {\n on customer.message[abuse == insul]\n require agent.warn within 30s\n}", "E013"),
        ("rule r {\n while count agent.warn >= 1m\n forbid agent.hang_up\n}", "E014"),
        ("let a = a + 1\nrule r {\n while a > 1\n forbid agent.hang_up\n}", "E015"),
        ("let a = b\nlet b = a\nrule r {\n while a > 1\n forbid agent.hang_up\n}", "E015"),
        ("let insult = 1\nrule r {\n on customer.message[abuse == insult]\n require agent.warn within 1m\n}", "E016"),
        ("rule r {\n while true\n forbid agent.hang_up\n}\nrule r {\n while true\n forbid agent.warn\n}", "E017"),
        ("let a = 1\nlet a = 2\nrule r {\n while a > 1\n forbid agent.hang_up\n}", "E018"),
        ("default forbid agent.hang_up\ndefault forbid agent.hang_up", "E019"),
        ('rule r {\n while true\n forbid agent.hang_up\n because "a"\n because "b"\n}', "E020"),
        ("event agent.warn", "E021"),
        ("rule r {\n while true\n forbid customer.message\n}", "E022"),
        ("rule r {\n on customer.message\n permit agent.hang_up\n}", "E023"),
        ("default forbid agent.hang_up\nrule r {\n on customer.message\n require agent.hang_up within 1m\n}", "E024"),
        ("rule r {\n while last party of fault.determined == customer\n forbid agent.hang_up\n}", "E025"),
        ("event x.y { id: int }", "E026"),
        ("rule r {\n while time since agent.warn + 1m > 2m\n forbid agent.hang_up\n}", "E028"),
        ("event x.y { a: int, a: bool }", "E029"),
        ('rule r {\n on customer.message\n require agent.warn within 1m\n}\ntest "t" {\n fault.determined\n}', "E030"),
        ('rule r {\n on customer.message\n require agent.warn within 1m\n}\ntest "t" {\n at 5s agent.warn\n at 2s agent.warn\n}', "E031"),
        ('rule r {\n while true\n forbid agent.hang_up\n}\ntest "t" {\n agent.warn\n expect fired r\n}', "E032"),
        ("rule r {\n while true\n permit agent.warn\n}", "W001"),
        ("default forbid agent.hang_up\nrule r {\n while 1 > 2\n permit agent.hang_up\n}", "W002"),
        ("let unused = 1", "W003"),
    ],
)
def test_each_code_fires(body: str, code: str) -> None:
    assert code in codes(body)


def test_errors_are_collected_not_stopped_at_the_first() -> None:
    found = codes("rule a {\n on customer.mesage\n require agent.wrn within 1m\n}\nrule b {\n on x.y\n permit agent.warn\n}")
    assert found.count("E010") >= 3 and "E023" in found


def test_diagnostics_are_sorted_by_position() -> None:
    diags = check_source(HEADER + "rule b {\n on x.y\n require agent.wrn within 1m\n}\nlet unused = 1\n", "t.esc").diagnostics
    positions = [(d.span.line, d.span.column) for d in diags]
    assert positions == sorted(positions)


def test_did_you_mean_for_events_attributes_and_enum_values() -> None:
    diags = check_source(HEADER + "rule r {\n on customer.mesage\n require agent.warn within 1m\n}", "t.esc").diagnostics
    assert diags[0].hint == "did you mean `customer.message`?"
    diags = check_source(HEADER + "rule r {\n on customer.message[abuse == insul]\n require agent.warn within 1m\n}", "t.esc").diagnostics
    assert "`insult`" in diags[0].hint


def test_attribute_in_brackets_wins_over_let_and_enum() -> None:
    text = HEADER + "let abuse = 1\nrule r {\n on customer.message[abuse == insult]\n require agent.warn within 1m\n}\nrule s {\n while abuse > 0\n forbid agent.hang_up\n}"
    assert check_source(text, "t.esc").ok


def test_each_enum_field_is_its_own_type() -> None:
    text = HEADER + "rule r {\n while last party of fault.determined else customer == last by of interaction.end\n forbid agent.hang_up\n}"
    assert "E014" in [d.code for d in check_source(text, "t.esc").diagnostics]


def test_rendered_diagnostic_has_location_excerpt_caret_and_help() -> None:
    text = HEADER + "rule r {\n  on customer.mesage\n  require agent.warn within 1m\n}\n"
    d = check_source(text, "p.esc").diagnostics[0]
    rendered = d.render(text).splitlines()
    assert rendered[0] == "p.esc:3:6: error[E010]: unknown event or action `customer.mesage`"
    assert rendered[1].endswith("  on customer.mesage")
    assert rendered[2].endswith("^" * len("customer.mesage"))
    assert rendered[3].startswith("  help: did you mean")


def test_columns_count_code_points() -> None:
    text = 'policy "ÅÄÖ"\nrule r {\n  while "é" == nope\n  forbid agent.hang_up\n}\n'
    d = check_source(text, "p.esc").diagnostics[0]
    assert (d.span.line, d.span.column) == (3, 16)
