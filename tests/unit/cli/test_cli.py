"""The command line: verbs, exit codes, atomic output, no tracebacks."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from conftest import escalation_command

POLICY = """policy "Mini" version "1"
default forbid agent.hang_up severity high
let warnings = count agent.warn
rule hang_up_after_two {
  while warnings >= 2
  permit agent.hang_up
}
rule warn_on_insult {
  on customer.message[abuse == insult]
  require agent.warn within 30s
}
"""

EVENTS = [
    {"conversation": "a", "time": "2026-11-22T10:00:00Z", "type": "customer.message", "abuse": "insult"},
    {"conversation": "a", "time": "2026-11-22T10:00:10Z", "type": "agent.hang_up"},
    {"conversation": "b", "time": "2026-11-22T10:00:00Z", "type": "customer.message", "abuse": "insult"},
    {"conversation": "b", "time": "2026-11-22T10:05:00Z", "type": "agent.warn"},
]


def run(*args: str, stdin: bytes | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*escalation_command(), *args], input=stdin, capture_output=True, cwd=cwd, timeout=120)


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    policy = tmp_path / "mini.esc"
    policy.write_text(POLICY, encoding="utf-8")
    events = tmp_path / "events.jsonl"
    events.write_text("".join(json.dumps(e) + "\n" for e in EVENTS), encoding="utf-8")
    return policy, events


def records(data: bytes) -> list[dict[str, object]]:
    return [json.loads(line) for line in data.splitlines()]


def test_replay_writes_the_log_and_a_summary(files: tuple[Path, Path], tmp_path: Path) -> None:
    policy, events = files
    out = tmp_path / "audit.jsonl"
    proc = run("replay", str(policy), str(events), "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    recs = records(out.read_bytes())
    assert [r["kind"] for r in recs] == ["header", "decision", "decision", "decision", "decision", "close", "summary"]
    assert recs[5]["conversation"] == "a" and recs[5]["open"][0]["id"] == "a#1"
    assert recs[-1]["by_kind"] == {"forbidden_action": 1, "missed_deadline": 1, "unfulfilled": 0}
    assert b"violations: 2" in proc.stderr


def test_fail_on_violation_exits_3(files: tuple[Path, Path], tmp_path: Path) -> None:
    policy, events = files
    assert run("replay", str(policy), str(events), "-o", str(tmp_path / "a.jsonl"), "--fail-on-violation").returncode == 3


def test_rejected_records_exit_4_and_win_over_3(files: tuple[Path, Path], tmp_path: Path) -> None:
    policy, events = files
    events.write_text(events.read_text() + "not json\n")
    proc = run("replay", str(policy), str(events), "-o", str(tmp_path / "a.jsonl"), "--fail-on-violation")
    assert proc.returncode == 4
    rejected = [r for r in records((tmp_path / "a.jsonl").read_bytes()) if r["kind"] == "rejected"]
    assert rejected[0]["source"] == f"{events}:5" and rejected[0]["raw"] == "not json"


def test_strict_leaves_no_file_and_keeps_an_old_one(files: tuple[Path, Path], tmp_path: Path) -> None:
    policy, events = files
    out = tmp_path / "a.jsonl"
    out.write_text("previous\n")
    events.write_text(events.read_text() + "not json\n")
    assert run("replay", str(policy), str(events), "-o", str(out), "--strict").returncode == 4
    assert out.read_text() == "previous\n"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".escalation-")]


def test_stdin_is_named_dash(files: tuple[Path, Path]) -> None:
    policy, events = files
    proc = run("replay", str(policy), "-", stdin=events.read_bytes())
    assert proc.returncode == 0
    recs = records(proc.stdout)
    assert recs[0]["inputs"][0]["path"] == "-"
    assert recs[1]["source"] == "-:1"


def test_invalid_policy_exits_1_and_unreadable_events_exit_2(files: tuple[Path, Path], tmp_path: Path) -> None:
    policy, events = files
    bad = tmp_path / "bad.esc"
    bad.write_text('policy "x"\nrule r {\n  on customer.mesage\n  require agent.warn within 1m\n}\n')
    proc = run("replay", str(bad), str(events))
    assert proc.returncode == 1 and b"did you mean" in proc.stderr
    proc = run("replay", str(policy), str(tmp_path / "missing.jsonl"))
    assert proc.returncode == 2 and b"Traceback" not in proc.stderr


def test_verify_intact_tampered_and_replayed(files: tuple[Path, Path], tmp_path: Path) -> None:
    policy, events = files
    out = tmp_path / "a.jsonl"
    run("replay", str(policy), str(events), "-o", str(out))
    assert run("verify", str(out)).returncode == 0
    assert run("verify", str(out), "--policy", str(policy), "--events", str(events)).returncode == 0
    lines = out.read_bytes().splitlines(keepends=True)
    (tmp_path / "t.jsonl").write_bytes(b"".join(lines[:2] + lines[3:]))
    proc = run("verify", str(tmp_path / "t.jsonl"))
    assert proc.returncode == 5 and b":3:" in proc.stderr
    other = tmp_path / "other.esc"
    other.write_text(POLICY.replace("30s", "40s"))
    assert run("verify", str(out), "--policy", str(other), "--events", str(events)).returncode == 5


def test_check_json_format(tmp_path: Path) -> None:
    bad = tmp_path / "bad.esc"
    bad.write_text('policy "x"\nrule r {\n  on customer.mesage\n  require agent.warn within 1m\n}\n')
    proc = run("check", "--format", "json", str(bad))
    assert proc.returncode == 1
    doc = json.loads(proc.stdout)
    assert doc["errors"] == 1 and doc["diagnostics"][0]["code"] == "E010" and doc["diagnostics"][0]["line"] == 3


def test_hostile_policy_bytes_give_a_diagnostic(tmp_path: Path) -> None:
    bad = tmp_path / "bad.esc"
    bad.write_bytes(b'policy "x"\nlet a = \xff\n')
    proc = run("check", str(bad))
    assert proc.returncode == 1 and b"UTF-8" in proc.stdout and b"Traceback" not in proc.stdout + proc.stderr
    assert run("check", str(tmp_path / "nope.esc")).returncode == 1


def test_explain_names_rules_and_values(files: tuple[Path, Path]) -> None:
    policy, events = files
    proc = run("explain", str(policy), str(events), "--conversation", "a", "--seq", "2", "--action", "agent.hang_up")
    assert proc.returncode == 0
    text = proc.stdout.decode()
    assert "forbidden" in text and "hang_up_after_two" in text and "warnings = 0" in text


def test_python_dash_m_works() -> None:
    import sys

    proc = subprocess.run([sys.executable, "-m", "escalation", "--version"], capture_output=True, timeout=60)
    assert proc.returncode == 0 and b"escalation" in proc.stdout


def test_explain_reads_the_state_before_the_event(tmp_path: Path) -> None:
    policy = tmp_path / "one.esc"
    policy.write_text(
        'policy "One offer"\ndefault forbid agent.offer_compensation\nlet offers = count agent.offer_compensation\n'
        "rule one_offer_after_an_apology {\n  while offers == 0 and seen agent.apologize\n  permit agent.offer_compensation\n}\n"
    )
    events = tmp_path / "e.jsonl"
    events.write_text(
        '{"conversation":"c","time":"2026-11-22T08:00:00Z","type":"agent.apologize"}\n'
        '{"conversation":"c","time":"2026-11-22T08:00:05Z","type":"agent.offer_compensation"}\n'
    )
    text = run("explain", str(policy), str(events), "--conversation", "c", "--seq", "2").stdout.decode()
    assert "offers = 0" in text and "it was permitted, so it is no violation" in text


def test_check_and_fmt_handle_sibling_test_files(files: tuple[Path, Path], tmp_path: Path) -> None:
    tests = tmp_path / "mini.test.esc"
    tests.write_text('test "t" {\n      agent.warn    # first\n  expect fired nope\n}\n')
    proc = run("check", str(tests))
    assert proc.returncode == 1 and f"{tests}:3:".encode() in proc.stdout
    tests.write_text('test "t" {\n      agent.warn    # first\n  expect no   violations\n}\n')
    assert run("check", str(tmp_path)).returncode == 0
    assert run("fmt", "--check", str(tests)).returncode == 1
    assert run("fmt", str(tests)).returncode == 0
    assert tests.read_text() == 'test "t" {\n  agent.warn  # first\n  expect no violations\n}\n'
    assert run("fmt", "--check", str(tests)).returncode == 0


def test_the_group_has_one_command_per_verb_module() -> None:
    from escalation.cli.app import cli

    assert sorted(cli.commands) == ["check", "compile", "explain", "fmt", "replay", "serve", "test", "verify"]


def test_an_error_raised_in_a_verb_is_one_sentence_with_its_class_exit_code(files: tuple[Path, Path], tmp_path: Path) -> None:
    from click.testing import CliRunner

    from escalation.cli.app import cli

    policy, events = files
    result = CliRunner().invoke(cli, ["explain", str(policy), str(events), "--conversation", "nobody"])
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit)  # a clean exit, not a traceback
    assert "error: conversation 'nobody' has no event at any accepted record" in result.output
    rejected = tmp_path / "rejected.jsonl"
    rejected.write_text("not json\n")
    result = CliRunner().invoke(cli, ["replay", "--strict", str(policy), str(rejected), "-o", str(tmp_path / "audit.jsonl")])
    assert result.exit_code == 4 and isinstance(result.exception, SystemExit)
    assert "rejected: the line is not valid JSON" in result.output and result.output.rstrip().endswith("(--strict: no audit log was written)")
    assert not (tmp_path / "audit.jsonl").exists()


def test_main_turns_an_error_raised_outside_any_command_into_its_exit_code(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from escalation.cli import app
    from escalation.errors import EventError

    def failing(*args: object, **kwargs: object) -> None:
        raise EventError("a reason")

    monkeypatch.setattr(app.cli, "main", failing)
    with pytest.raises(SystemExit) as caught:
        app.main()
    assert caught.value.code == EventError.exit_code
    assert capsys.readouterr().err == "error: a reason\n"
