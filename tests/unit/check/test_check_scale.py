"""`escalation check` on large inputs: work linear in what is checked, memory bounded by the limits."""

from __future__ import annotations

import subprocess
import sys
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from conftest import escalation_command
from escalation import suggest, syntax
from escalation.check import checker, context
from escalation.cli import app as cli
from escalation.errors import Diagnostic, PolicyError, Span, render_all
from escalation.lang import ast

ROOT = Path(__file__).resolve().parents[3]


def _calls_on(target: object, run: Callable[[], Any]) -> int:
    """How many C-level calls ``run`` makes on ``target`` itself (``target.split``, ``target.count``, …)."""
    calls = 0

    def profile(frame: Any, event: str, arg: Any) -> None:
        nonlocal calls
        if event == "c_call" and getattr(arg, "__self__", None) is target:
            calls += 1

    sys.setprofile(profile)
    try:
        run()
    finally:
        sys.setprofile(None)
    return calls


def _many_diagnostics(n: int) -> tuple[str, list[Diagnostic]]:
    source = "\n".join(f"let unused_{i} = 1" for i in range(n)) + "\n"
    diags = [Diagnostic("W003", "warning", f"`unused_{i}` is never used", Span(i + 1, 5, i + 1, 12 + len(str(i))), "remove it", "p.esc") for i in range(n)]
    return source, diags


def test_rendering_many_diagnostics_reads_the_source_once() -> None:
    """The text of `check` was quadratic: each diagnostic split the whole source again to find its line.

    With 20,000 diagnostics, the calls made on the source text stay a constant (one split),
    for :func:`render_all` (what the `check` verb prints) and for PolicyError.render.
    """
    source, diags = _many_diagnostics(20_000)
    assert _calls_on(source, lambda: render_all(diags, source)) <= 2
    assert _calls_on(source, lambda: PolicyError(diags, source).render()) <= 2


def test_rendering_all_at_once_is_rendering_each() -> None:
    source, diags = _many_diagnostics(300)
    expected = "\n".join(d.render(source) for d in diags)
    assert render_all(diags, source) == expected == PolicyError(diags, source).render()
    assert render_all(diags, None) == "\n".join(d.render() for d in diags)


def test_check_prints_every_diagnostic_with_its_own_line(tmp_path: Path) -> None:
    path = tmp_path / "many.esc"
    path.write_text('policy "p" version "1"\n' + "".join(f"let unused_{i} = {i}\n" for i in range(200)))
    result = CliRunner().invoke(cli.cli, ["check", str(path)])
    assert result.exit_code == 0
    for i in range(200):
        assert f"{path}:{i + 2}:5: warning[W003]: `unused_{i}` is never used\n{i + 2:>4} | let unused_{i} = {i}\n" in result.output


# ---------------------------------------------------------------- an enum of 100,000 values


class _CountingStr(str):
    """A name that counts how often it is compared for equality (hashing is a str's own)."""

    comparisons = 0

    def __eq__(self, other: object) -> bool:
        _CountingStr.comparisons += 1
        return str.__eq__(self, other)

    __hash__ = str.__hash__


def _enum_policy(members: list[str], values: list[str]) -> ast.Policy:
    """`event ticket.tag { kind: MEMBERS }`, `let tagged = count ticket.tag[kind in {VALUES}]` and a rule reading it."""
    kind = ast.TypeRef("enum", tuple(ast.Name(m) for m in members))
    decl = ast.Decl("event", ast.Name("ticket.tag"), (ast.FieldDecl(ast.Name("kind"), kind),))
    cond = ast.In(ast.NameRef("kind"), tuple(ast.NameRef(v) for v in values))
    let = ast.Let(ast.Name("tagged"), ast.Count(ast.Pattern(ast.Name("ticket.tag"), cond)))
    rule = ast.Rule(ast.Name("r"), ast.While(ast.Compare(">=", ast.NameRef("tagged"), ast.IntLit(1))), (ast.Permission("forbid", ast.Name("agent.warn")),), ())
    return ast.Policy(ast.StringLit("p"), ast.StringLit("1"), (decl, let, rule))


def _edit_distances(run: Callable[[], Any]) -> int:
    calls = 0
    code = suggest.edit_distance.__code__

    def profile(frame: Any, event: str, arg: Any) -> None:
        nonlocal calls
        if event == "call" and frame.f_code is code:
            calls += 1

    sys.setprofile(profile)
    try:
        run()
    finally:
        sys.setprofile(None)
    return calls


def test_an_enum_of_100000_values_is_checked_with_work_linear_in_its_size() -> None:
    """Duplicate values were found by list membership (quadratic: 100,000 values never finished).

    Each value name counts its equality comparisons: the checker makes a bounded number per value.
    """
    n = 100_000
    members = [_CountingStr(f"value_{i}") for i in range(n)] + [_CountingStr("value_7")]
    _CountingStr.comparisons = 0
    result = checker.check(_enum_policy(members, [f"value_{i}" for i in range(0, n, 3)]))
    assert [(d.code, d.message) for d in result.diagnostics] == [("E029", "the value `value_7` is listed twice")]
    assert _CountingStr.comparisons <= 3 * len(members)


def test_unknown_values_of_a_huge_enum_cost_a_bounded_number_of_edit_distances() -> None:
    """"Did you mean" compared every unknown value with every member: 2,000 typos in a 100,000-value enum
    meant 2e8 edit distances. Now each looks at a bounded number of candidates, a check makes a bounded
    number of suggestions, and the hint lists a few values, not all of them."""
    n = 100_000
    members = [f"value_{i}" for i in range(n)]
    typos = [f"valeu_{i}" for i in range(2_000)]
    holder: list[checker.CheckResult] = []
    calls = _edit_distances(lambda: holder.append(checker.check(_enum_policy(members, typos))))
    diags = holder[0].diagnostics
    assert [d.code for d in diags] == ["E013"] * len(typos)
    assert calls <= context.MAX_SUGGESTIONS * suggest.MAX_SUGGESTION_DISTANCES
    assert any(d.hint.startswith("did you mean `value_") for d in diags)  # the first ones still get a suggestion
    assert max(len(d.hint) for d in diags) < 400
    assert diags[-1].hint.endswith(f"and {n - context.MAX_LISTED} more")


def test_did_you_mean_still_finds_the_close_names() -> None:
    assert suggest.did_you_mean("agent.warm", ["agent.warn", "agent.hang_up"]) == "agent.warn"
    assert suggest.did_you_mean("customer.mesage", ["customer.message"]) == "customer.message"
    assert suggest.did_you_mean("mesage", iter(["message", "x"])) == "message"  # one pass: an iterator is enough
    assert suggest.did_you_mean("x" * 1_000_000, ["x" * 1_000_000]) is None  # no suggestion for a name that long
    many = [f"n{i}" for i in range(1_000_000)]
    assert _edit_distances(lambda: suggest.did_you_mean("zz", many)) <= suggest.MAX_SUGGESTION_DISTANCES


def test_check_of_a_policy_file_with_a_100000_value_enum_finishes(tmp_path: Path) -> None:
    """The command line, on the text (a hang guard, in addition to the counts above)."""
    n = 100_000
    path = tmp_path / "enum.esc"
    path.write_text(
        'policy "p" version "1"\n'
        + "event ticket.tag { kind: " + " | ".join(f"k{i}" for i in range(n)) + " | k5 }\n"
        + "let tagged = count ticket.tag[kind in {" + ", ".join(f"k{i}" for i in range(0, n, 7)) + ", kx}]\n"
        + "rule r {\n  while tagged >= 1\n  forbid agent.warn\n}\n"
    )
    result = subprocess.run([*escalation_command(), "check", str(path)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    assert "error[E029]: the value `k5` is listed twice" in result.stdout
    assert "error[E013]: `kx` is not a value of `ticket.tag.kind`" in result.stdout
    assert "Traceback" not in result.stderr


# ---------------------------------------------------------------- memory: long literals, huge files


def _peak_bytes(run: Callable[[], Any]) -> int:
    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _because(text: str) -> str:
    return f'policy "p" version "1"\nrule r {{\n  on customer.message\n  require agent.warn within 30s\n  because "{text}"\n}}\n'


def test_a_long_string_literal_is_lexed_in_memory_proportional_to_its_text() -> None:
    """The lexer's STRING pattern repeated a group once per character: 3.9 MB of `because` took 584 MB
    of regular-expression backtracking state. Unrolled (a character class repeated inside), it takes none."""
    syntax.lark_parser()
    source = _because("a" * 3_900_000)
    holder: list[ast.Policy] = []
    peak = _peak_bytes(lambda: holder.append(syntax.parse(source)))
    assert holder[0].rules[0].notes[0].text.value == "a" * 3_900_000  # type: ignore[union-attr]
    assert peak < 40 * len(source) // 4  # a few copies of the text (10x its size), not 150x


def test_string_literals_still_mean_what_json_says() -> None:
    value = 'q\\"b\\\\s\\/f\\bn\\nr\\rt\\tu\\u00e9\\ud83d\\ude00'
    policy = syntax.parse(_because(value))
    assert policy.rules[0].notes[0].text.value == 'q"b\\s/f\bn\nr\rt\tué😀'  # type: ignore[union-attr]
    for bad in ("\\q", "\\u12", "tab\there", '\\'):
        try:
            syntax.parse(_because(bad))
        except PolicyError as err:
            assert err.diagnostics[0].code == "E001"
        else:
            raise AssertionError(bad)


def test_escapes_and_dots_are_bounded_per_line_with_e004() -> None:
    """An escape in a literal, or a part of a dotted name, still costs the matcher about 190 bytes: a line
    holds at most MAX_LINE_MARKS of each, so one token costs at most about 2 MB, refused before lexing."""
    limit = syntax.MAX_LINE_MARKS
    syntax.parse(_because("\\n" * limit))  # at the limit: fine
    for source, what in ((_because("\\n" * (limit + 1)), "backslashes"), ('policy "p"\nlet x = count ' + "a." * (limit + 1) + "b\n", "dots")):
        holder: list[PolicyError] = []

        def run(source: str = source, holder: list[PolicyError] = holder) -> None:
            try:
                syntax.parse(source)
            except PolicyError as err:
                holder.append(err)

        peak = _peak_bytes(run)
        (d,) = holder[0].diagnostics
        assert (d.code, d.span.line) == ("E004", source.count("\n", 0, source.index("\\" if what == "backslashes" else "a.")) + 1)
        assert what in d.message
        assert peak < 10 * len(source) + (1 << 20)
    # many escapes spread over lines are fine
    escapes = "\\n" * 100
    syntax.parse('policy "p"\n' + "".join(f'test "{escapes}" {{ }}\n' for _ in range(200)))


_PEAK_RSS = """
import resource, subprocess, sys
result = subprocess.run(sys.argv[1:], capture_output=True, text=True)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
print(result.returncode)
sys.stdout.write(result.stdout + result.stderr)
"""


def test_a_huge_policy_file_is_refused_without_reading_it(tmp_path: Path) -> None:
    """A 1 GB policy was read whole (and decoded: twice its size in memory) before the size limit applied.
    Now the file's size is looked at first, and at most 4 bytes per allowed character are ever read.
    (256 MB here: enough to tell, and small enough that the code before the fix does not exhaust a CI machine.)"""
    path = tmp_path / "huge.esc"
    with path.open("wb") as fh:
        fh.truncate(1 << 28)  # sparse: takes no disk space
    for verb in (["check"], ["check", "--format", "json"], ["fmt", "--check"], ["test"]):
        out = subprocess.run([sys.executable, "-c", _PEAK_RSS, *escalation_command(), *verb, str(path)], capture_output=True, text=True, timeout=120).stdout
        peak_kb, code, _ = out.split("\n", 2)
        assert int(code) == 1, out
        assert "E004" in out and "too large" in out and "Traceback" not in out
        assert int(peak_kb) < 150_000, f"{verb}: peak RSS {peak_kb} kB"


class _CountingStr(str):
    """A member name that counts how often it is compared for equality."""

    compared = 0

    def __eq__(self, other: object) -> bool:
        _CountingStr.compared += 1
        return str.__eq__(self, other)

    __hash__ = str.__hash__


def test_an_event_value_is_looked_up_in_a_large_enum_without_a_scan() -> None:
    """An event's enum value was found by scanning the enum's members at every event; a rejection listed them all."""
    from escalation.errors import EventError
    from escalation.lang.vocabulary import EnumType, EventType, Field
    from escalation.runtime.events import convert_attribute

    members = tuple(_CountingStr(f"v{i}") for i in range(5_000))
    enum = EnumType("ticket.kind", members)
    event = EventType("ticket.note", False, (Field("kind", enum),))
    _CountingStr.compared = 0
    for i in range(0, 5_000, 50):
        assert convert_attribute(event, "kind", f"v{i}") == f"v{i}"
    assert _CountingStr.compared <= 200  # a scan made about 250,000 comparisons
    try:
        convert_attribute(event, "kind", "nope")
    except EventError as err:
        reason = str(err)
    assert "v0, v1" in reason and "and 4988 more" in reason and "v4999" not in reason
    assert len(reason) < 400
