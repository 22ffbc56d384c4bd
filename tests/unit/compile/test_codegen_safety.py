"""Nothing from outside the engine becomes code: codegen prints outside data only through ``repr``.

The generated step functions (codegen.py) are Python source compiled at load time. A
policy's file name, its strings, and the names of its events, actions, fields, enum
members, lets and rules are all data; a newline or a quote in any of them must not change
the shape of the generated module. The property test renames every such name of a
checked policy to a hostile string (the parser would refuse most of them, so it works on
the checked tree) and compares the generated module's syntax tree with the benign one,
string constants aside. The end-to-end test plants a policy file whose name holds a
newline and Python code, as `escalation test policies/` once ran such a file's name.
"""

from __future__ import annotations

import ast as pyast
import subprocess
from pathlib import Path
from typing import Any

import attrs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import escalation_command
from escalation import check_source
from escalation.check.checker import CheckedPolicy
from escalation.compile import HELPERS, CompiledPolicy, compile_policy
from escalation.runtime import step_table

BENIGN = '''policy "lit_policy_name" version "1"
event zz.note { zkind: zalpha | zbeta = zalpha, ztext: string = "", zn: int = 0 }
action zz.stamp { zlabel: string = "lit_label" }
default forbid zz.stamp severity high
let zsmall = count agent.warn
let zbig = count zz.note[zkind == zbeta and ztext != "lit_quote"] + count zz.note[zn > 2] + count zz.note[zn > 3] + count zz.note[zn > 4] + count zz.note[zn > 5] + count zz.note[zn > 6] + count agent.warn
let zbigger = zbig + zbig + zsmall
let zlast = last ztext of zz.note else "lit_none"
rule zstamp_rule {
  while zsmall >= 1 and zlast != "lit_stop" and time since zz.note < 5m
  permit zz.stamp
}
rule ztimed_a {
  while count zz.note within 30s >= 2 and zbigger >= 1
  forbid agent.hang_up
}
rule ztimed_b {
  while count zz.note[zkind in {zalpha, zbeta}] within 1m == 0 and seen zz.note
  permit agent.hang_up
}
rule ztimed_c {
  while time since zz.note[ztext == "lit_quote"] > 1m
  require zz.stamp[zlabel == "lit_done"] within 1m
}
rule ztimed_d {
  while time since agent.warn <= 30s and zbigger > 2
  forbid zz.stamp
}
rule znote_rule {
  on zz.note[ztext == "lit_quote" and zkind in {zalpha, zbeta}] if zbig >= 1
  require zz.stamp[zlabel == "lit_done"] or agent.warn within 1m before interaction.end
  because "lit_reason"
}
'''

#: Every outside name or string of BENIGN (and its path), each to be replaced by a hostile string.
OUTSIDE = (
    "benign.esc", "lit_policy_name", "zz.note", "zz.stamp", "zkind", "zalpha", "zbeta", "ztext", "zn", "zlabel",
    "lit_label", "zsmall", "zbig", "zbigger", "zlast", "lit_quote", "lit_none", "lit_stop", "lit_done", "lit_reason",
    "zstamp_rule", "ztimed_a", "ztimed_b", "ztimed_c", "ztimed_d", "znote_rule",
)  # fmt: skip

#: Pieces of hostile text: line breaks Python or str.splitlines() knows, quotes, escapes, code.
FRAGMENTS = (
    "\n", "\r", "\r\n", "\u2028", "\u2029", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\x00", "\ud800",
    '"', "'", '"""', "'''", "\\", "\\n", "#", "{", "}", "(", ")", ":", ";", "\t", " ",
    "import os", "open('PWNED', 'w').close()", "def f(s):", "return 1", "x = 1", "raise SystemExit",
    "f'{1}'", "K0", "L", "s[0]", "lambda: 0", "é", "\u202e",
)  # fmt: skip

hostile_text = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=3)), min_size=1, max_size=8).map("".join)


def _checked() -> CheckedPolicy:
    result = check_source(BENIGN, "benign.esc")
    assert result.checked is not None, [d.message for d in result.diagnostics]
    return result.checked


def _renamed(value: Any, names: dict[str, str]) -> Any:
    """``value`` with every string that is a key of ``names`` replaced, through attrs classes, tuples, lists and dicts."""
    if isinstance(value, str):
        return names.get(value, value)
    if isinstance(value, tuple):
        return tuple(_renamed(v, names) for v in value)
    if isinstance(value, list):
        return [_renamed(v, names) for v in value]
    if isinstance(value, dict):
        return {_renamed(k, names): _renamed(v, names) for k, v in value.items()}
    if attrs.has(type(value)):
        fields = attrs.fields(type(value))
        return type(value)(**{f.name: _renamed(getattr(value, f.name), names) for f in fields if f.init})
    return value


def _compiled(names: dict[str, str]) -> CompiledPolicy:
    checked = _checked()
    renamed = attrs.evolve(
        checked,
        policy=_renamed(checked.policy, names),
        path=names.get(checked.path, checked.path),
        vocabulary=_renamed(checked.vocabulary, names),
        let_types=_renamed(checked.let_types, names),
        let_order=_renamed(checked.let_order, names),
    )
    return compile_policy(renamed)


class _Strings(pyast.NodeTransformer):
    """Every string constant becomes the same one: what is left is the module's shape."""

    def visit_Constant(self, node: pyast.Constant) -> pyast.Constant:
        return pyast.Constant("S") if isinstance(node.value, str) else node


def _shape(source: str) -> str:
    return pyast.dump(_Strings().visit(pyast.parse(source)))


def _functions(source: str) -> list[str]:
    return sorted(node.name for node in pyast.parse(source).body if isinstance(node, pyast.FunctionDef))


BENIGN_SOURCE = _compiled({}).generated


def test_the_benign_policy_exercises_what_codegen_prints() -> None:
    """The renamed policy reaches the printer's every branch: memoised lets, grouped timed rules, guards, strings."""
    assert "def let_" in BENIGN_SOURCE and "rewhile(" in BENIGN_SOURCE and "wake[" in BENIGN_SOURCE
    assert "'lit_quote'" in BENIGN_SOURCE and "'zz.note'" in BENIGN_SOURCE and "'benign.esc'" in BENIGN_SOURCE
    statements = [type(node).__name__ for node in pyast.parse(BENIGN_SOURCE).body]
    assert set(statements) == {"FunctionDef", "Assign"} and statements.count("Assign") == 1  # the FEEDERS table


def test_the_generated_module_calls_only_public_names_the_runtime_gives_it() -> None:
    """No private attribute (``self._judge``), and every global it reads is a helper, a constant or its own."""
    tree = pyast.parse(BENIGN_SOURCE)
    private = sorted({node.attr for node in pyast.walk(tree) if isinstance(node, pyast.Attribute) and node.attr.startswith("_")})
    assert private == []
    code = _compiled({}).code
    assert code is not None
    defined = {node.name for node in tree.body if isinstance(node, pyast.FunctionDef)} | {"FEEDERS"}
    local = {node.id for node in pyast.walk(tree) if isinstance(node, pyast.Name) and isinstance(node.ctx, pyast.Store)}
    local |= {a.arg for node in pyast.walk(tree) if isinstance(node, pyast.FunctionDef) for a in node.args.args}
    read = {node.id for node in pyast.walk(tree) if isinstance(node, pyast.Name) and isinstance(node.ctx, pyast.Load)}
    builtins = {"min", "tuple", "range", "len", "True", "False", "None"}
    assert read - local - defined - builtins <= set(HELPERS) | set(code.consts) | set(code.groups)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(hostile_text, min_size=len(OUTSIDE), max_size=len(OUTSIDE)))
def test_hostile_names_strings_and_paths_do_not_change_the_generated_module(texts: list[str]) -> None:
    # a tag keeps the hostile names apart from each other and from every name of the language
    names = {name: f"~{k}~{text}" for k, (name, text) in enumerate(zip(OUTSIDE, texts, strict=True))}
    compiled = _compiled(names)
    source = compiled.generated
    assert _functions(source) == _functions(BENIGN_SOURCE)
    assert _shape(source) == _shape(BENIGN_SOURCE)
    assert sorted(step_table(compiled, "generated")) == sorted(_renamed(sorted(step_table(_compiled({}), "generated")), names))


PLANTED = 'x\nopen("PWNED", "w").close()\n#.esc'


def test_a_policy_file_named_like_code_runs_no_code(tmp_path: Path) -> None:
    """check, test, replay and verify on a file whose name holds a newline and Python: no side effect."""
    root = Path(__file__).resolve().parents[3]
    planted = tmp_path / PLANTED
    planted.write_bytes((root / "policies" / "three_strikes.esc").read_bytes())
    events = tmp_path / "events.jsonl"
    events.write_text('{"conversation":"a","time":"2026-11-22T10:00:00Z","type":"agent.warn"}\n', encoding="utf-8")
    runs = [
        ["check", "."],
        ["test", "."],
        ["test", PLANTED],
        ["replay", PLANTED, "events.jsonl", "-o", "audit.jsonl"],
        ["verify", "audit.jsonl", "--policy", PLANTED, "--events", "events.jsonl"],
        ["explain", PLANTED, "events.jsonl", "--conversation", "a"],
    ]
    for args in runs:
        proc = subprocess.run([*escalation_command(), *args], cwd=tmp_path, capture_output=True, timeout=120)
        assert proc.returncode == 0, (args, proc.stderr)
        assert not (tmp_path / "PWNED").exists(), f"`escalation {args[0]}` ran code from the file name"
