"""Hostile policy text, and the safety of evaluating whatever the checker accepts.

Policy text comes from mutations of the real policies (byte flips, deletions,
duplications, splices, truncation, inserted tokens), from the grammar (AST strategies
printed by the formatter), and from token soup. The only outcomes allowed for
``check_source``, ``parse`` and ``format_source`` are a result, or a PolicyError or
FormatError carrying diagnostics; a policy that passes the checker must compile,
evaluate events and run its tests without an exception. ``escalation check`` on
nasty files never shows a traceback.

The second half backs the language's safety claims in docs/security.md: evaluating
an event performs no I/O, imports nothing and generates no code; its work does not
grow with the history or with rules about other events, and grows at most linearly
with the pending obligations; a `within` window holds only the events inside it.
"""

from __future__ import annotations

import gc
import io
import os
import re
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import ROOT, SHARED, escalation_command
from escalation import check_source, parse
from escalation.compile import CompiledPolicy, compile_policy
from escalation.errors import PolicyError
from escalation.lang import ast
from escalation.lang.limits import MAX_DEPTH, MAX_SOURCE_CHARS
from escalation.lang.units import US, format_time, parse_time
from escalation.lang.vocabulary import BOOL, DURATION, INT, STRING, EnumType, EventType
from escalation.load import load_checked
from escalation.replay import open_inputs, replay_records, write_log
from escalation.runtime.events import Event, validate
from escalation.runtime.interaction import Interaction
from escalation.syntax import RESERVED
from escalation.tooling.format import FormatError, format_policy, format_source
from escalation.tooling.testing import run_test
from helpers.policies import WORK_POLICY
from helpers.policy_strategies import policy_texts
from helpers.strategies import CONTEXTUAL_WORDS, policies
from helpers.work_counting import compiled as _compiled
from helpers.work_counting import lines_executed as _lines_executed

# ------------------------------------------------------------------ the corpus of real policies


def _corpus() -> dict[str, bytes]:
    files = sorted((ROOT / "policies").glob("*.esc"))
    if SHARED.is_dir():
        files += sorted(SHARED.glob("conformance/**/*.esc"))
    out = {str(f): f.read_bytes() for f in files}
    assert out, "no policies to mutate"
    return out


CORPUS = _corpus()
CORPUS_NAMES = sorted(CORPUS)

BASE = parse_time("2026-11-22T10:00:00Z")


def _sample_value(t: Any) -> Any:
    if isinstance(t, EnumType):
        return t.members[-1]
    return {INT: 3, BOOL: True, STRING: "s", DURATION: 45}[t]


def sample_events(vocabulary: dict[str, EventType], conversation: str = "c") -> list[Event]:
    """Two rounds of every event and action of a vocabulary, every field set, 20 seconds apart."""
    records = []
    names = sorted(vocabulary)
    for i, name in enumerate(names + names):
        et = vocabulary[name]
        record: dict[str, Any] = {"conversation": conversation, "time": format_time(BASE + i * 20 * US), "type": name}
        record.update({f.name: _sample_value(f.type) for f in et.fields})
        records.append(validate(record, vocabulary))
    return records


def exercise(policy: CompiledPolicy, checked_policy: ast.Policy) -> None:
    """Evaluate a checked policy: every event type twice, a close, a snapshot and resume, its tests."""
    inter = Interaction(policy, "c")
    for event in sample_events(policy.vocabulary):
        inter.feed(event)
    inter.close(BASE + 10**12)
    Interaction.resume(policy, inter.snapshot())
    for item in checked_policy.items:
        if isinstance(item, ast.Test):
            run_test(policy, item, "<fuzz>")


def _lines_of(text: str) -> int:
    return max(text.count("\n"), len(text.splitlines())) + 1


def check_outcome(text: str) -> None:
    """The only outcomes: a result, or PolicyError/FormatError with diagnostics; a checked policy runs."""
    _check_outcome(text)


def _check_outcome(text: str) -> None:
    result = check_source(text, "fuzz.esc")
    for d in result.diagnostics:
        assert d.code and d.message.strip(), d
        assert 1 <= d.span.line <= _lines_of(text) and d.span.column >= 1, d
        assert d.render(text).startswith("fuzz.esc:")
    try:
        tree = parse(text, "fuzz.esc")
    except PolicyError as err:
        assert err.diagnostics and all(d.is_error for d in err.diagnostics)
        assert not result.ok
        tree = None
    try:
        formatted = format_source(text, "fuzz.esc")
    except PolicyError as err:
        assert err.diagnostics and tree is None
    except FormatError as err:
        assert str(err)
    else:
        assert tree is not None and parse(formatted, "fuzz.esc") == tree
    if result.checked is not None and _encodable(text):  # see test_a_source_with_a_raw_lone_surrogate_is_refused_or_compiles
        exercise(compile_policy(result.checked), result.checked.policy)


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# ------------------------------------------------------------------ mutations


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A real policy with a few byte-level mutations: flips, deletions, duplications, splices, tokens, truncation."""
    data = bytearray(CORPUS[draw(st.sampled_from(CORPUS_NAMES))])
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.integers(0, 6))
        i = draw(st.integers(0, len(data)))
        j = draw(st.integers(i, min(len(data), i + 40)))
        if kind == 0 and i < len(data):
            data[i] ^= draw(st.sampled_from([1, 2, 4, 8, 16, 32, 64, 128, 255]))
        elif kind == 1:
            del data[i:j]
        elif kind == 2:
            data[i:i] = data[i:j] * draw(st.integers(1, 3))
        elif kind == 3:
            other = CORPUS[draw(st.sampled_from(CORPUS_NAMES))]
            k = draw(st.integers(0, len(other)))
            data[i:j] = other[k : k + draw(st.integers(0, 200))]
        elif kind == 4:
            data[i:i] = draw(_tokens).encode("utf-8", errors="surrogatepass") + b" "
        elif kind == 5:
            del data[i:]
        else:
            data[i:j] = draw(st.binary(max_size=4))
    return bytes(data)


_PUNCTUATION = ["{", "}", "[", "]", "(", ")", ",", ":", "=", "|", "==", "!=", "<", "<=", ">", ">=", "+", "-", ".", "#", '"', "\n", "\t", "\r"]
_tokens: st.SearchStrategy[str] = st.one_of(
    st.sampled_from(sorted(RESERVED) + CONTEXTUAL_WORDS),
    st.from_regex(r"[a-z_][a-z0-9_]{0,5}", fullmatch=True),
    st.from_regex(r"[a-z_][a-z0-9_]{0,4}(\.[a-z_][a-z0-9_]{0,4}){1,2}", fullmatch=True),
    st.sampled_from(["agent.hang_up", "agent.warn", "customer.message", "interaction.end", "abuse", "insult", "none"]),
    st.integers(0, 10**30).map(str),
    st.builds(lambda n, u: f"{n}{u}", st.integers(0, 10**20), st.sampled_from("smhdx")),
    st.sampled_from(['"text"', '"a # b"', '""', '"\\u00e9"', '"\\ud800"', '"\\udfff\\ud800"', '"unterminated', '"\\x"', "# comment", "\ufeff", "\u00e9t\u00e9", "\x00"]),
    st.sampled_from(_PUNCTUATION),
)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(mutated())
def test_mutated_real_policies_give_a_result_or_diagnostics(data: bytes) -> None:
    check_outcome(data.decode("utf-8", errors="replace"))
    check_outcome(data.decode("utf-8", errors="surrogateescape"))  # lone surrogates in the text itself


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(mutated())
def test_mutated_policy_files_load_or_raise_policy_error(workdir: str, data: bytes) -> None:
    path = Path(workdir) / "mutated.esc"
    path.write_bytes(data)
    try:
        checked = load_checked(str(path))
    except PolicyError as err:
        assert err.diagnostics and any(d.is_error for d in err.diagnostics)
        assert err.render()
        return
    exercise(compile_policy(checked, data), checked.policy)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(policies(max_items=6), st.lists(st.tuples(st.integers(0, 10**6), _tokens), max_size=3))
def test_grammar_generated_policies_give_a_result_or_diagnostics(policy: ast.Policy, insertions: list[tuple[int, str]]) -> None:
    text = format_policy(policy, [])
    check_outcome(text)
    for at, token in insertions:
        at %= len(text) + 1
        text = text[:at] + " " + token + " " + text[at:]
    check_outcome(text)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(policy_texts())
def test_policies_that_pass_the_checker_compile_and_run(text: str) -> None:
    result = check_source(text)
    assert result.checked is not None
    exercise(compile_policy(result.checked), result.checked.policy)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.booleans(), st.lists(st.tuples(_tokens, st.sampled_from([" ", " ", "\n", "", "\t", "\r\n"])), max_size=50))
def test_token_soup_gives_a_result_or_diagnostics(with_header: bool, soup: list[tuple[str, str]]) -> None:
    check_outcome(('policy "p"\n' if with_header else "") + "".join(tok + sep for tok, sep in soup))


#: Texts that probe each limit and each odd corner at once (module-level so they are built once).
NASTY_TEXTS: dict[str, str] = {
    "empty": "",
    "bom-only": "\ufeff",
    "nul": 'policy "p"\n\x00',
    "header-only-crlf": 'policy "p" version "1"\r\n',
    "deep-parentheses": 'policy "p"\nlet x = ' + "(" * 10_000 + "1" + ")" * 10_000 + "\n",
    "deep-not": 'policy "p"\nlet x = ' + "not " * 10_000 + "true\n",
    "long-or-chain": 'policy "p"\nlet x = ' + " or ".join(["true"] * 5_000) + "\n",
    "long-sum": 'policy "p"\nlet x = ' + " + ".join(["1"] * 5_000) + "\n",
    "deep-patterns": 'policy "p"\nlet x = ' + "count a.b[" * (MAX_DEPTH + 5) + "true" + "]" * (MAX_DEPTH + 5) + "\n",
    "nearly-deep-patterns": 'policy "p"\nlet x = ' + "count agent.warn[" * 40 + "true" + "]" * 40 + " >= 1\n",
    "long-identifier": 'policy "p"\nlet ' + "x" * 1_000_000 + " = 1\n",
    "long-string": 'policy "p"\nrule r {\n  on agent.warn\n  require agent.warn within 1s\n  because "' + "x" * 1_000_000 + '"\n}\n',
    "huge-number": 'policy "p"\nlet x = ' + "9" * 4_000 + "\n",
    "huge-duration": 'policy "p"\nlet x = ' + "9" * 4_000 + "s\n",
    "huge-deadline": 'policy "p"\nrule r {\n  on agent.warn\n  require agent.warn within ' + "9" * 4_000 + "s\n}\n",
    "many-set-members": 'policy "p"\nlet x = 1 in {' + ",".join(str(i) for i in range(2_000)) + "}\n",
    "unterminated-string": 'policy "p\n',
    "surrogate-escapes": 'policy "\\ud800" version "\\udfff"\n',
    "too-large": 'policy "p"\n' + " " * MAX_SOURCE_CHARS,
}


@pytest.mark.parametrize("name", sorted(NASTY_TEXTS))
def test_nasty_texts_give_a_result_or_diagnostics(name: str) -> None:
    check_outcome(NASTY_TEXTS[name])


# ------------------------------------------------------------------ known crashes (fixes outside the files of this suite)

LET_CHAIN = 1_000


def _let_chain(n: int) -> str:
    lets = "".join(f"let x{i} = x{i + 1} + 1\n" for i in range(n))
    return f'policy "Chain" version "1"\n{lets}let x{n} = count agent.warn\nrule r {{\n  while x0 >= 1\n  permit agent.warn\n}}\n'


def test_a_long_chain_of_lets_is_refused_or_evaluates() -> None:
    result = check_source(_let_chain(LET_CHAIN))
    if result.checked is None:
        assert any(d.code == "E004" for d in result.diagnostics)
        return
    exercise(compile_policy(result.checked), result.checked.policy)


def test_a_long_chain_of_lets_shows_no_traceback_on_the_command_line(tmp_path: Path) -> None:
    policy = tmp_path / "chain.esc"
    policy.write_text(_let_chain(LET_CHAIN), encoding="utf-8")
    events = tmp_path / "events.jsonl"
    events.write_text('{"conversation":"a","time":"2026-11-22T10:00:00Z","type":"agent.warn"}\n', encoding="utf-8")
    for args in (["test", str(policy)], ["replay", str(policy), str(events)]):
        proc = subprocess.run([*escalation_command(), *args], capture_output=True, timeout=120)
        assert b"Traceback" not in proc.stderr, args


SURROGATE_POLICY = 'policy "\\ud800" version "1"\ndefault forbid agent.hang_up\n'


def test_a_policy_string_with_a_lone_surrogate_is_refused_or_replays(workdir: str) -> None:
    result = check_source(SURROGATE_POLICY)
    if result.checked is None:
        return
    events = Path(workdir) / "one.jsonl"
    events.write_text('{"conversation":"a","time":"2026-11-22T10:00:00Z","type":"agent.hang_up"}\n', encoding="utf-8")
    write_log(replay_records(compile_policy(result.checked, SURROGATE_POLICY.encode()), open_inputs([str(events)])), io.BytesIO())


@pytest.mark.parametrize("text", ['policy "a\tb"\n', 'policy "p"\nrule r {\n  on agent.warn\n  require agent.warn within 1s\n  because "\x01"\n}\n'])
def test_a_control_character_in_a_string_is_a_diagnostic(text: str) -> None:
    result = check_source(text, "control.esc")
    assert not result.ok and result.diagnostics[0].span.line >= 1


def test_a_source_with_a_raw_lone_surrogate_is_refused_or_compiles() -> None:
    result = check_source('policy "p"\n# \udcd3\ndefault forbid agent.hang_up\n')
    if result.checked is not None:
        compile_policy(result.checked)


_DIGITS = "9" * 4_301  # one more than Python converts by default (sys.get_int_max_str_digits)


@pytest.mark.parametrize(
    "text",
    [
        f'policy "p"\nlet x = {_DIGITS}\n',
        f'policy "p"\nlet x = {_DIGITS}s\n',
        f'policy "p"\nrule r {{\n  on agent.warn\n  require agent.warn within {_DIGITS}s\n}}\n',
        f'policy "p"\ntest "t" {{\n  at {_DIGITS}s agent.warn\n}}\n',
    ],
    ids=["int", "duration", "deadline", "test-offset"],
)
def test_a_number_of_thousands_of_digits_is_a_diagnostic(text: str) -> None:
    result = check_source(text, "digits.esc")
    assert not result.ok and any(d.code == "E003" for d in result.diagnostics)


# ------------------------------------------------------------------ the command line on nasty files


@pytest.fixture(scope="module")
def workdir() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="escalation-fuzz-policy-") as d:
        yield d


def test_check_fmt_and_test_on_nasty_files_never_show_a_traceback(tmp_path: Path) -> None:
    files: dict[str, bytes] = {
        "binary.esc": bytes(range(256)) * 4,
        "bad-utf8.esc": b'policy "p"\nlet x = "\xff\xfe"\n',
        "crlf.esc": CORPUS[str(ROOT / "policies" / "three_strikes.esc")].replace(b"\n", b"\r\n"),
        "truncated.esc": CORPUS[str(ROOT / "policies" / "three_strikes.esc")][:333],
    }
    for name in ("empty", "bom-only", "nul", "deep-parentheses", "deep-not", "long-identifier", "huge-number", "unterminated-string", "too-large"):
        files[f"{name}.esc"] = NASTY_TEXTS[name].encode("utf-8", errors="surrogatepass")
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "folder.esc").mkdir()  # a folder whose name looks like a policy
    (tmp_path / "folder.esc" / "inner.esc").write_bytes(b"\x00\x01")
    paths = [str(tmp_path / name) for name in sorted(files)] + [str(tmp_path / "folder.esc"), str(tmp_path / "missing.esc")]
    for verb in (["check"], ["check", "--format", "json"], ["fmt", "--check"], ["test"]):
        proc = subprocess.run([*escalation_command(), *verb, *paths], capture_output=True, timeout=300)
        output = (proc.stdout + proc.stderr).decode("utf-8", errors="replace")
        assert "Traceback" not in output, output[-3000:]
        assert proc.returncode in (1, 2), (verb, proc.returncode, output[-2000:])
    proc = subprocess.run([*escalation_command(), "check", str(tmp_path / "binary.esc")], capture_output=True, timeout=60)
    assert proc.returncode == 1 and re.search(rb"binary\.esc:\d+:\d+: error\[E005\]: the policy is not valid UTF-8", proc.stdout)


# ------------------------------------------------------------------ language safety (docs/security.md)

#: Every word the grammar knows (language.md §3: the reserved words, and the words that mean something at one place).
DOCUMENTED_WORDS = RESERVED | set(CONTEXTUAL_WORDS)
DOCUMENTED_PUNCTUATION = {"(", ")", ",", ":", "=", "[", "]", "{", "|", "}"}
#: The other tokens: operators, literals, names, comments and blanks — nothing that could name a file, a module or a loop.
DOCUMENTED_PATTERNS = {"CMP", "ADDOP", "DURATION", "INT", "DOTTED", "NAME", "STRING", "COMMENT"}


def test_the_grammar_has_only_the_documented_words_and_tokens() -> None:
    """No keyword beyond the documented ones: nothing for I/O, imports, loops or functions can be written."""
    import lark

    from escalation.syntax import lark_parser

    terminals = lark_parser().terminals
    words = {t.pattern.value for t in terminals if isinstance(t.pattern, lark.lexer.PatternStr)}
    assert words - DOCUMENTED_PUNCTUATION == DOCUMENTED_WORDS
    patterns = {t.name for t in terminals if not isinstance(t.pattern, lark.lexer.PatternStr) and not t.name.startswith("__IGNORE")}
    assert patterns == DOCUMENTED_PATTERNS
    assert not {"import", "include", "load", "open", "read", "exec", "for", "loop", "def", "fn", "call"} & words


#: Audit events that mean neither I/O nor code loading: CPython raises one for every call of `id()`.
HARMLESS_AUDIT_EVENTS = frozenset({"builtins.id"})
_WATCHED = threading.local()
_SEEN: list[str] = []


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if getattr(_WATCHED, "on", False):
        _SEEN.append(event)


sys.addaudithook(_audit)  # hooks cannot be removed; this one records only while a test switches it on


def _watching(fn: Callable[[], None]) -> list[str]:
    """The audit events raised while ``fn`` runs (the collector is paused: others' finalizers are not ``fn``'s doing)."""
    gc.collect()
    gc.disable()
    _SEEN.clear()
    _WATCHED.on = True
    try:
        fn()
    finally:
        _WATCHED.on = False
        gc.enable()
    return sorted(set(_SEEN))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(policy_texts())
def test_evaluation_does_no_io_imports_nothing_and_generates_no_code(text: str) -> None:
    """No audit event (open, import, exec, compile, socket, subprocess, os.*, ...) while events are evaluated, but `id()`."""
    result = check_source(text)
    assert result.checked is not None
    policy = compile_policy(result.checked)
    events = sample_events(policy.vocabulary)

    def evaluate() -> None:
        inter = Interaction(policy, "c")
        for event in events:
            inter.feed(event)
        inter.close(BASE + 10**12)

    evaluate()  # a first run may fill caches; the claim is about every run
    assert [e for e in _watching(evaluate) if e not in HARMLESS_AUDIT_EVENTS] == []


def test_the_audit_hook_sees_io_when_there_is_some() -> None:
    """The watch above is not blind: opening a file while it is on is recorded."""
    assert "open" in _watching(lambda: open(os.devnull, "rb").close())


def _event(policy: CompiledPolicy, second: int, etype: str, **attrs: Any) -> Event:
    return validate({"conversation": "c", "time": format_time(BASE + second * US), "type": etype, **attrs}, policy.vocabulary)


def _unrelated_rules(n: int) -> str:
    """``n`` rules and lets about `ticket.note` only: nothing an `agent.warn` or `customer.message` touches."""
    return "".join(f"let notes{i} = count ticket.note[n > {i}]\nrule on_note{i} {{\n  on ticket.note[n == {i}] if notes{i} >= 1\n  require agent.follow_up within 1h\n}}\n" for i in range(n))


def _work_of_last_event(policy: CompiledPolicy, history: int) -> int:
    """Lines executed to feed one `agent.warn` after ``history`` alternating messages and warnings."""
    inter = Interaction(policy, "c")
    templates = [_event(policy, 0, "customer.message", abuse="profanity"), _event(policy, 0, "agent.warn")]
    for i in range(history):
        template = templates[i % 2]
        inter.feed(Event("c", BASE + i * US, template.type, template.attrs))
    warn = templates[1]
    last = Event("c", BASE + history * US, warn.type, warn.attrs)
    return _lines_executed(lambda: inter.feed(last))


def test_work_per_event_does_not_grow_with_the_history() -> None:
    policy = _compiled(WORK_POLICY)
    assert _work_of_last_event(policy, 10) == _work_of_last_event(policy, 10_000)


def test_work_per_event_does_not_depend_on_rules_about_other_events() -> None:
    few = _work_of_last_event(_compiled(WORK_POLICY + _unrelated_rules(1)), 10)
    many = _work_of_last_event(_compiled(WORK_POLICY + _unrelated_rules(300)), 10)
    assert few == many, f"{few} lines with 1 unrelated rule, {many} with 300"


def test_work_per_event_grows_at_most_linearly_with_pending_obligations() -> None:
    policy = _compiled(WORK_POLICY)

    def work(pending: int) -> int:
        inter = Interaction(policy, "c")
        for i in range(pending):  # each insult creates an obligation due in 48h
            inter.feed(_event(policy, i, "customer.message", abuse="insult"))
        assert len(inter.pending) == pending
        message = _event(policy, pending, "customer.message", abuse="none")
        return _lines_executed(lambda: inter.feed(message))

    base, hundred, thousand = work(0), work(100), work(1_000)
    per_obligation = (thousand - hundred) / 900
    assert per_obligation <= 10, per_obligation
    assert thousand - base <= 10 * 1_000 + (hundred - base)


def test_no_event_scans_the_pending_obligations_until_one_is_due() -> None:
    """Until the earliest deadline passes, an event costs the same whatever is pending; then one scan, and again nothing."""
    policy = _compiled(WORK_POLICY)

    def loaded(pending: int) -> Interaction:
        inter = Interaction(policy, "c")
        for i in range(pending):  # each insult creates an obligation due in 48h, the first at second 48h
            inter.feed(_event(policy, i, "customer.message", abuse="insult"))
        return inter

    calm = _event(policy, 3_000, "customer.message", abuse="none")  # nothing is due yet
    one, many = loaded(1), loaded(1_000)
    base, thousand = _lines_executed(lambda: one.feed(calm)), _lines_executed(lambda: many.feed(calm))
    assert thousand == base, f"{base} lines with 1 pending, {thousand} with 1,000"
    later = 48 * 3600 + 500  # the first 500 deadlines have passed

    def after_expiry(pending: int) -> tuple[int, int, int]:
        inter = loaded(pending)
        first = _lines_executed(lambda: inter.feed(_event(policy, later, "customer.message", abuse="none")))
        again = _lines_executed(lambda: inter.feed(_event(policy, later, "customer.message", abuse="none")))
        return len(inter.pending), first, again

    left_many, scan_many, again_many = after_expiry(1_000)
    left_few, scan_few, again_few = after_expiry(600)
    assert (left_many, left_few) == (500, 100)
    assert scan_many > scan_few + 400  # the one scan, over every pending obligation
    assert again_many == again_few  # the next deadline is still ahead: nothing scanned


WINDOW_POLICY = """policy "Window" version "1"
rule busy {
  while count agent.warn within 30s >= 5
  forbid agent.hang_up
}
"""


def test_a_window_holds_only_the_events_inside_it() -> None:
    policy = _compiled(WINDOW_POLICY)
    inter = Interaction(policy, "c")
    sizes = []
    for i in range(5_000):  # one warning a second: the window never holds more than 31
        inter.feed(_event(policy, i, "agent.warn"))
        sizes.append(max((len(v) for v in inter.snapshot()["state"] if isinstance(v, list)), default=0))
    assert max(sizes) == 31 and sizes[-1] == 31
    burst = Interaction(policy, "burst")
    same_time = _event(policy, 0, "agent.warn")
    for _ in range(5_000):  # all at one moment: all inside the window (what an attacker can do)
        burst.feed(same_time)
    assert max(len(v) for v in burst.snapshot()["state"] if isinstance(v, list)) == 5_000
    burst.feed(_event(policy, 31, "agent.warn"))  # and they leave it as soon as time moves on
    assert max(len(v) for v in burst.snapshot()["state"] if isinstance(v, list)) == 1
