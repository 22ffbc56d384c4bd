"""The checker: each diagnostic code fires where it should, with a useful hint, and valid policies pass."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import HealthCheck, given, settings

from escalation import check_source
from escalation.lang import format_time, parse_time
from escalation.lang.calendar import DEFAULT_CALENDAR, Calendar
from helpers.policy_strategies import policy_texts

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


# ---------------------------------------------------------------- language 2: customers, calendars, claims

LETTER = "action agent.send_letter\nrule letter {\n on issue.resolved\n require agent.send_letter within 10 working days\n}\n"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ('calendar {\n zone "UTC"\n}\ncalendar {\n zone "UTC"\n}\n' + LETTER, "E033"),
        ('calendar {\n zone "Europe/Londn"\n}\n' + LETTER, "E034"),
        ('calendar {\n zone "europe/london"\n}\n' + LETTER, "E034"),
        ("calendar {\n week mon tue fry\n}\n" + LETTER, "E035"),
        ('calendar {\n holidays "2026-02-30"\n}\n' + LETTER, "E036"),
        ('calendar {\n holidays "25/12/2026"\n}\n' + LETTER, "E036"),
        ("action agent.send_letter\nrule letter {\n on issue.resolved\n require agent.send_letter within 0 working days\n}\n", "E037"),
        ('calendar {\n zone "UTC"\n zone "GB"\n}\n' + LETTER, "E038"),
        ("calendar {\n week mon\n week tue\n}\n" + LETTER, "E038"),
        ("calendar {\n week mon tue mon\n}\n" + LETTER, "E038"),
        ("action agent.send_letter\nrule letter {\n on issue.resolved\n require agent.send_letter within 3651 working days\n}\n", "E039"),
        ("rule r {\n on issue.resolved\n require agent.follow_up within 36501d\n}\n", "E039"),
        ("let n = count agent.warn within 876025h\nrule r {\n while n > 1\n forbid agent.hang_up\n}\n", "E039"),
        ("rule r {\n while forbidden agent.hang_up\n require agent.warn within 1m\n}\n", "E040"),
        ("let p = permitted agent.warn\nrule r {\n while p\n forbid agent.hang_up\n}\n", "E040"),
        ('rule r {\n on customer.message\n require agent.warn within 1m\n}\ntest "t" {\n customer.message customer="bob"\n}\n', "E041"),
        ('rule r {\n on customer.message\n require agent.warn within 1m\n}\ntest "t" from "2026-01-05 09:00" {\n customer.message\n}\n', "E042"),
        ('rule r {\n on customer.message\n require agent.warn within 1m\n}\ntest "t" {\n customer.message\n expect obligation agent.warn due "soon"\n}\n', "E042"),
        ("claim \"c\" {\n always count agent.warn\n}\n", "E014"),
        (LETTER, "W005"),
        ('calendar {\n holidays "2026-12-25", "2026-12-25"\n}\n' + LETTER, "W006"),
        ('calendar {\n week mon tue wed thu fri\n holidays "2026-12-26"\n}\n' + LETTER, "W006"),
        ('calendar {\n zone "Europe/London"\n}\nrule r {\n on issue.resolved\n require agent.follow_up within 48h\n}\n', "W007"),
    ],
)
def test_each_language_2_code_fires(body: str, code: str) -> None:
    assert code in codes(body)


def test_an_unknown_zone_gets_a_did_you_mean_from_the_real_zone_list() -> None:
    diags = check_source(HEADER + 'calendar {\n zone "Europe/Londn"\n}\n' + LETTER, "t.esc").diagnostics
    assert diags[0].code == "E034" and diags[0].hint == "did you mean `Europe/London`?"
    diags = check_source(HEADER + 'calendar {\n zone "america/new_york"\n}\n' + LETTER, "t.esc").diagnostics
    assert "`America/New_York`" in diags[0].hint
    diags = check_source(HEADER + "calendar {\n week mon tue thurs\n}\n" + LETTER, "t.esc").diagnostics
    assert diags[0].hint == "did you mean `thu`?"


def test_links_and_utc_are_zones() -> None:
    for zone in ("UTC", "GB", "Etc/UTC", "America/Argentina/Buenos_Aires"):
        assert check_source(HEADER + f'calendar {{\n zone "{zone}"\n}}\n' + LETTER, "t.esc").ok, zone


def test_the_checked_policy_carries_its_calendar() -> None:
    text = HEADER + 'calendar {\n zone "Europe/London"\n week mon tue wed thu\n holidays "2026-12-25"\n holidays "2026-12-28", "2026-12-25"\n}\n' + LETTER
    result = check_source(text, "t.esc")
    assert result.checked is not None
    assert result.checked.calendar == Calendar("Europe/London", frozenset({0, 1, 2, 3}), (date(2026, 12, 25), date(2026, 12, 28)))
    plain = check_source(HEADER + LETTER, "t.esc").checked
    assert plain is not None and plain.calendar == DEFAULT_CALENDAR


def test_the_spec_example_deadlines_come_from_the_checked_calendar() -> None:
    text = HEADER + 'calendar {\n zone "Europe/London"\n week mon tue wed thu fri\n holidays "2026-12-25", "2026-12-28", "2027-01-01"\n}\n' + LETTER
    checked = check_source(text, "t.esc").checked
    assert checked is not None
    assert format_time(checked.calendar.due(parse_time("2026-12-18T15:00:00Z"), 3)) == "2026-12-24T00:00:00Z"
    assert format_time(checked.calendar.due(parse_time("2026-12-18T15:00:00Z"), 5)) == "2026-12-30T00:00:00Z"


@pytest.mark.parametrize(
    ("body", "reads"),
    [
        ("let w = count agent.warn\nrule r {\n while w > 1\n forbid agent.hang_up\n}\n", False),
        ("let w = count agent.warn across contacts\nrule r {\n while w > 1\n forbid agent.hang_up\n}\n", True),
        ("let unused = seen agent.warn across contacts\n", True),  # an unused let counts (language.md §9)
        ("rule r {\n on customer.message[time since agent.warn across contacts < 1m]\n require agent.warn within 1m\n}\n", True),
        ("rule r {\n while last by of interaction.end across contacts == customer\n forbid agent.hang_up\n}\n", True),
        ('claim "c" {\n always not (permitted agent.hang_up and not seen agent.warn across contacts)\n}\n', False),  # claims do not count
    ],
)
def test_reads_customer_history(body: str, reads: bool) -> None:
    result = check_source(HEADER + body, "t.esc")
    assert result.checked is not None, [d.message for d in result.diagnostics]
    assert result.checked.reads_customer_history is reads


def test_claims_check_like_while_conditions_and_may_read_permissions() -> None:
    text = HEADER + 'default forbid agent.hang_up\nclaim "warned first" {\n always not (permitted agent.hang_up and not seen agent.warn) or forbidden agent.warn\n}\n'
    assert check_source(text, "t.esc").ok
    found = codes('claim "c" {\n always permitted customer.message\n}\n')
    assert "E022" in found
    found = codes('claim "c" {\n always permitted agent.hangup\n}\n')
    assert "E010" in found


def test_new_forms_check_without_findings() -> None:
    text = HEADER + (
        'calendar {\n zone "Europe/London"\n holidays "2026-12-25"\n}\n'
        "event sanction.imposed\naction agent.send_letter\n"
        "let warnings = count agent.warn within 365d across contacts\n"
        "let restricted = seen sanction.imposed since agent.warn within 365d across contacts\n"
        "rule refuse {\n while restricted or warnings >= 3\n forbid agent.offer_compensation\n}\n"
        "rule confirm {\n on sanction.imposed\n require agent.send_letter within 1 working day before interaction.end\n}\n"
        'test "two contacts" from "2026-12-18T15:00:00+00:00" {\n sanction.imposed\n contact\n at 1h agent.warn\n'
        ' expect obligation agent.send_letter due "2026-12-22T00:00:00Z"\n}\n'
    )
    result = check_source(text, "t.esc")
    assert result.diagnostics == [], [d.message for d in result.diagnostics]


def test_a_field_may_not_be_named_customer() -> None:
    assert "E026" in codes("event x.y { customer: string }")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policy_texts(language=2))
def test_generated_language_2_policies_check_without_errors(text: str) -> None:
    result = check_source(text, "t.esc")
    assert result.ok, "\n".join(d.render(text) for d in result.diagnostics)
