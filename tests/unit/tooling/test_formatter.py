"""The formatter: one canonical layout, the same tree back, comments kept where they were."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from escalation import syntax as parser
from escalation.errors import EscalationError, PolicyError
from escalation.lang import ast
from escalation.tooling.format import FormatError, check_formatted, format_expr, format_policy, format_source
from helpers.policy_strategies import policy_texts
from helpers.strategies import messy_layouts, policies

SHARED = Path(__file__).resolve().parents[4] / "shared"
SPEC = SHARED / "spec" / "language.md"
THREE_STRIKES = SHARED / "conformance" / "three_strikes.esc"
CASES = SHARED / "conformance" / "cases"

_PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _comment_texts(text: str) -> Counter[str]:
    return Counter(c.text for c in parser.extract_comments(text))


def _code_only(text: str) -> list[str]:
    """The text's lines without comments, blank lines or trailing blanks: what the layout says about code."""
    comments = {(c.line, c.column) for c in parser.extract_comments(text)}
    lines = []
    for number, line in enumerate(text.split("\n"), 1):
        for line_no, column in comments:
            if line_no == number:
                line = line[: column - 1]
        if line.strip():
            lines.append(line.rstrip())
    return lines


def _assert_canonical_shape(text: str) -> None:
    assert text.endswith("\n") and not text.endswith("\n\n")
    assert all(line == line.rstrip() for line in text.split("\n")), "trailing whitespace"
    assert "\n\n\n" not in text, "more than one blank line in a row"
    assert all(not line[: len(line) - len(line.lstrip())].strip(" ") for line in text.split("\n")), "indented with tabs"


# ---------------------------------------------------------------- properties


@_PROPERTY
@given(policies())
def test_printing_a_tree_then_parsing_gives_the_same_tree(policy: ast.Policy) -> None:
    text = format_policy(policy, [])
    assert parser.parse(text) == policy
    _assert_canonical_shape(text)


@_PROPERTY
@given(policies())
def test_formatting_is_idempotent(policy: ast.Policy) -> None:
    once = format_policy(policy, [])
    assert format_source(once) == once


@_PROPERTY
@given(st.data())
def test_messy_layouts_with_comments_keep_tree_and_comments_and_converge(data: st.DataObject) -> None:
    policy = data.draw(policies(max_items=4))
    clean = format_policy(policy, [])
    messy = data.draw(messy_layouts(clean))
    out = format_source(messy)
    assert parser.parse(out) == policy
    assert _comment_texts(out) == _comment_texts(messy)
    assert format_source(out) == out
    _assert_canonical_shape(out)
    # Line breaks, spacing and comments in the input do not change how code is laid out.
    assert _code_only(out) == _code_only(clean)


# ---------------------------------------------------------------- the shared example policies


def _spec_example() -> str:
    if not SPEC.is_file():
        pytest.skip(f"the language specification is not at {SPEC} (the shared folder beside the repository)")
    blocks = re.findall(r"```esc\n(.*?)```", SPEC.read_text(encoding="utf-8"), re.DOTALL)
    assert blocks, "the specification has no ```esc block"
    return str(blocks[0])


def test_spec_example_keeps_every_comment_and_is_idempotent() -> None:
    source = _spec_example()
    out = format_source(source, "language.md")
    assert _comment_texts(out) == _comment_texts(source)
    assert _comment_texts(source), "the example is expected to hold at least one comment"
    assert format_source(out) == out
    assert parser.parse(out) == parser.parse(source)


def test_three_strikes_changes_only_the_alignment_of_lets() -> None:
    if not THREE_STRIKES.is_file():
        pytest.skip(f"the conformance policy is not at {THREE_STRIKES}")
    source = THREE_STRIKES.read_text(encoding="utf-8")
    out = format_source(source, str(THREE_STRIKES))
    assert _comment_texts(out) == _comment_texts(source)
    assert format_source(out) == out
    # The file is already canonical except for the spaces that align a few `=` signs.
    assert out == re.sub(r"(?m)^(let \w+) +=", r"\1 =", source)


def _conformance_policies() -> list[Path]:
    return sorted(CASES.glob("*/policy.esc")) if CASES.is_dir() else []


@pytest.mark.parametrize("path", _conformance_policies(), ids=lambda p: p.parent.name)
def test_conformance_policies_format_idempotently(path: Path) -> None:
    source = path.read_text(encoding="utf-8")
    try:
        tree = parser.parse(source)
    except PolicyError:
        with pytest.raises(PolicyError):
            format_source(source)
        return
    out = format_source(source)
    assert parser.parse(out) == tree
    assert _comment_texts(out) == _comment_texts(source)
    assert format_source(out) == out


# ---------------------------------------------------------------- golden


MESSY = """\
# Top of file.
policy   "Golden"    version "1"   # the header
let a=1
let b =   a+2   # sum



let c = ( a  +  b ) - 1
default   forbid agent.hang_up   severity   high
event shop.sale { amount : int = 3 , kind : small|large }
rule   r1 {
on customer.message [ abuse in { insult , threat } ] if a>=1 and
    not b == 2  # long condition
# own-line in a rule
require agent.warn or agent.hang_up within 30s before interaction.end
  because "say \\u0068i \\"there\\""
  severity low
  # before the brace
}
let d = last party of fault.determined else unknown
test "t" {
  at 10s customer.message abuse=insult  # first step
  # before expect
  expect permitted agent.hang_up expect obligation agent.warn due 2m
  expect violation missed_deadline r1
  expect no violations
  expect fired r1
}
let e = time since agent.warn
# The end.
"""

GOLDEN = """\
# Top of file.
policy "Golden" version "1"  # the header

let a = 1
let b = a + 2  # sum

let c = (a + b) - 1
default forbid agent.hang_up severity high
event shop.sale { amount: int = 3, kind: small | large }

rule r1 {
  on customer.message[abuse in {insult, threat}] if a >= 1 and not b == 2  # long condition
  # own-line in a rule
  require agent.warn or agent.hang_up within 30s before interaction.end
  because "say hi \\"there\\""
  severity low
  # before the brace
}

let d = last party of fault.determined else unknown

test "t" {
  at 10s customer.message abuse=insult  # first step
  # before expect
  expect permitted agent.hang_up
  expect obligation agent.warn due 2m
  expect violation missed_deadline r1
  expect no violations
  expect fired r1
}

let e = time since agent.warn
# The end.
"""


def test_golden_messy_input_gives_the_canonical_layout() -> None:
    assert format_source(MESSY) == GOLDEN
    assert format_source(GOLDEN) == GOLDEN


def test_blank_lines_between_one_line_items_follow_the_author_and_blocks_get_exactly_one() -> None:
    source = 'policy "p"\nlet a = 1\nlet b = 2\n\n\n\nlet c = 3\nrule r { while a permit x.y }\n\n\n\ntest "t" { }\nlet d = 4\n'
    assert format_source(source) == (
        'policy "p"\n\nlet a = 1\nlet b = 2\n\nlet c = 3\n\nrule r {\n  while a\n  permit x.y\n}\n\ntest "t" {\n}\n\nlet d = 4\n'
    )


def test_header_alone_and_header_with_only_a_final_comment() -> None:
    assert format_source('policy "p"   version "v"') == 'policy "p" version "v"\n'
    assert format_source('policy "p" # why\n# closing words') == 'policy "p"  # why\n\n# closing words\n'


def test_expression_spacing_and_the_authors_parentheses() -> None:
    source = 'policy "p"\nlet x = not(a)and(b or c)!=d\nlet y = count a.b[x==1]since c.d within 007s>= 2\nlet z = a+(b-c)-d'
    out = format_source(source)
    assert "let x = not (a) and (b or c) != d\n" in out
    assert "let y = count a.b[x == 1] since c.d within 007s >= 2\n" in out
    assert "let z = a + (b - c) - d\n" in out


def test_strings_are_re_encoded_as_json_and_durations_stay_as_written() -> None:
    source = (
        'policy "caf\\u00e9 \\/ \\ud83d\\ude00" version "\\u00e9"\nrule r { on a.b require c.d within 2m because "tab\\there" }'
    )
    out = format_source(source)
    assert out.startswith('policy "café / 😀" version "é"\n')
    assert "  require c.d within 2m\n" in out
    assert '  because "tab\\there"\n' in out
    out.encode("utf-8")


def test_a_hand_built_tree_without_groups_is_printed_with_the_parentheses_it_needs() -> None:
    a, b, c = ast.NameRef("a"), ast.NameRef("b"), ast.NameRef("c")
    assert format_expr(ast.BoolOp("and", ast.BoolOp("or", a, b), c)) == "(a or b) and c"
    assert format_expr(ast.Arith("-", a, ast.Arith("-", b, c))) == "a - (b - c)"
    assert format_expr(ast.Compare("<", ast.Compare("<", a, b), c)) == "(a < b) < c"
    assert format_expr(ast.Not(ast.Compare("==", a, b))) == "not a == b"
    assert format_expr(ast.In(ast.Not(a), (ast.NameRef("x"),))) == "(not a) in {x}"


# ---------------------------------------------------------------- comments stay attached


def test_trailing_and_own_line_comments_stay_with_their_rule_lines() -> None:
    source = (
        'policy "p"\n'
        "rule r {\n"
        "    # about the trigger\n"
        "    on a.b   # trigger\n"
        "    permit c.d # no: forbid\n"
        "# about the note\n"
        "    severity high}   # closing\n"
    )
    assert format_source(source) == (
        'policy "p"\n\n'
        "rule r {\n"
        "  # about the trigger\n"
        "  on a.b  # trigger\n"
        "  permit c.d  # no: forbid\n"
        "  # about the note\n"
        "  severity high\n"
        "}  # closing\n"
    )


def test_trailing_and_own_line_comments_stay_with_their_test_steps() -> None:
    source = 'policy "p"\ntest "t" {  # opening\n  a.b x=1 # one\n  # two\n  expect no violations\n  # last\n}\n'
    assert format_source(source) == (
        'policy "p"\n\ntest "t" {  # opening\n  a.b x=1  # one\n  # two\n  expect no violations\n  # last\n}\n'
    )


def test_comments_inside_a_multi_line_construct_attach_to_its_line() -> None:
    source = 'policy "p"\nlet x = a and  # first\n  # inside\n  b or  # second\n  c  # third\nlet y = 1\n'
    out = format_source(source)
    # One line keeps one end-of-line comment (the last); the others move above it, in source order.
    assert out == 'policy "p"\n\n# first\n# inside\n# second\nlet x = a and b or c  # third\nlet y = 1\n'
    assert format_source(out) == out


def test_a_comment_on_a_line_of_several_items_follows_the_last_token_of_that_line() -> None:
    source = 'policy "p"\nlet a = 1 let b = 2  # on b\nrule r { on x.y permit a.b }  # on the brace\n'
    out = format_source(source)
    assert "let a = 1\nlet b = 2  # on b\n" in out
    assert "  permit a.b\n}  # on the brace\n" in out


def test_comments_before_the_header_and_after_the_last_item() -> None:
    source = '# first\n\n# second\npolicy "p"\nrule r { while a permit b.c }\n# after\n\n# very end\n'
    assert format_source(source) == (
        '# first\n\n# second\npolicy "p"\n\nrule r {\n  while a\n  permit b.c\n}\n\n# after\n\n# very end\n'
    )


def test_hash_inside_strings_is_not_a_comment() -> None:
    source = 'policy "a # b"\nrule r { on a.b require c.d within 1s because "#1 rule" }  # real\n'
    out = format_source(source)
    assert _comment_texts(out) == Counter(["# real"])
    assert 'because "#1 rule"' in out


# ---------------------------------------------------------------- errors


def test_syntax_errors_propagate_as_policy_errors() -> None:
    with pytest.raises(PolicyError) as caught:
        format_source('policy "p"\nlet x =\n', "bad.esc")
    assert caught.value.diagnostics[0].code == "E001"
    assert caught.value.diagnostics[0].path == "bad.esc"


def _refusal(source: str, formatted: str, path: str = "<policy>") -> FormatError:
    """The formatter's self-check of ``formatted`` as if its printer had written it for ``source``."""
    with pytest.raises(FormatError) as caught:
        check_formatted(parser.parse(source, path), parser.extract_comments(source), formatted, path)
    assert isinstance(caught.value, EscalationError)
    return caught.value


def test_format_error_when_the_printer_drops_part_of_the_tree() -> None:
    source = 'policy "p"\nrule r { on a.b require c.d within 30s }\n'
    careless = 'policy "p"\n\nrule r {\n  on a.b\n  permit agent.warn\n}\n'
    err = _refusal(source, careless, "p.esc")
    assert "would change what the policy says" in str(err)
    assert "p.esc" in str(err)


def test_format_error_when_the_printer_writes_something_unparsable() -> None:
    source = 'policy "p"\nrule r { on a.b require c.d within 30s because "x" }\n'
    unparsable = 'policy "p"\n\nrule r {\n  on a.b\n  require c.d within 30s\n  because\n}\n'
    assert "no longer parses" in str(_refusal(source, unparsable))


def test_format_error_when_a_comment_would_be_lost() -> None:
    source = 'policy "p"  # keep\nlet a = 1  # lost\n'
    forgetful = 'policy "p"  # keep\n\nlet a = 1\n'
    assert "# lost" in str(_refusal(source, forgetful))


def test_the_formatters_own_output_passes_its_check() -> None:
    source = 'policy "p"  # keep\nlet a = 1  # lost\nrule r { on a.b require c.d within 30s because "x" }\n'
    check_formatted(parser.parse(source), parser.extract_comments(source), format_source(source))


def test_deepest_accepted_nesting_formats_without_recursion_error() -> None:
    shapes: list[Callable[[int], str]] = [
        lambda n: "(" * n + "a" + ")" * n,
        lambda n: "not " * n + "a",
        lambda n: "a" + " + a" * n,
        lambda n: "a" + " and a" * n,
        lambda n: "count x.y[" * n + "a" + "]" * n,
    ]
    for shape in shapes:
        low, high = 1, 400  # find the deepest nesting the parser accepts
        while low < high:
            mid = (low + high + 1) // 2
            try:
                parser.parse(f'policy "p"\nlet x = {shape(mid)}\n')
                low = mid
            except PolicyError:
                high = mid - 1
        assert low > 50, "the parser should accept moderately deep nesting"
        source = f'policy "p"\n\nlet x = {shape(low)}\n'
        assert format_source(source) == source


# ---------------------------------------------------------------- language 2 forms

LANGUAGE_2 = """policy "Customers"  # header

# The office's calendar.
calendar {  # opens
  zone "Europe/London"  # the zone
  # working days
  week mon tue wed thu fri
  holidays "2026-12-25",
    "2026-12-28"  # Christmas
}

event sanction.imposed
action agent.send_letter

let warnings = count agent.warn   within 365d across   contacts  # a year
let restricted = seen sanction.imposed since agent.warn within 365d across contacts
let fault = last party of fault.determined across contacts else unknown
let quiet = time since customer.message across contacts

rule confirm {
  on sanction.imposed if warnings >= 1 or restricted or fault == company or quiet > 1m
  require agent.send_letter within 1 working days before interaction.end  # fmt writes `day`
}

rule answer {
  on sanction.imposed
  require agent.send_letter within 10 working day
}

claim "warned first" {
  # a comment in a claim
  always not (permitted agent.hang_up and not seen agent.warn) or forbidden agent.warn
}

test "two contacts" from "2026-12-18T15:00:00Z" {  # Friday
  sanction.imposed
  contact  # the next contact
  expect obligation agent.send_letter due "2026-12-24T00:00:00Z"
  expect obligation agent.send_letter due 3d
}
"""


def test_language_2_forms_round_trip_with_their_comments() -> None:
    out = format_source(LANGUAGE_2)
    assert parser.parse(out) == parser.parse(LANGUAGE_2)
    assert _comment_texts(out) == _comment_texts(LANGUAGE_2)
    assert format_source(out) == out
    _assert_canonical_shape(out)
    assert "within 1 working day before interaction.end" in out
    assert "within 10 working days\n" in out
    assert "let warnings = count agent.warn within 365d across contacts  # a year" in out
    assert '  holidays "2026-12-25", "2026-12-28"  # Christmas' in out
    assert 'test "two contacts" from "2026-12-18T15:00:00Z" {  # Friday' in out
    assert "  contact  # the next contact" in out


@_PROPERTY
@given(policy_texts(language=2))
def test_generated_language_2_policies_format_idempotently_and_keep_their_tree(text: str) -> None:
    out = format_source(text)
    assert parser.parse(out) == parser.parse(text)
    assert format_source(out) == out
