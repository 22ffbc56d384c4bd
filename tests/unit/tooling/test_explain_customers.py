"""explain says which values are read over the customer history (language.md §9), and from whose."""

from __future__ import annotations

import subprocess
from pathlib import Path

from conftest import escalation_command

POLICY = """policy "Across"

default forbid agent.hang_up

let warnings_this_year = count agent.warn within 365d across contacts

rule second_contact {
  while warnings_this_year >= 1 and seen customer.message[abuse != none] and time since agent.warn across contacts < 400d
  permit agent.hang_up
}
"""

EVENTS = """{"conversation": "a", "time": "2026-11-22T10:00:00Z", "type": "agent.warn", "customer": "k1"}
{"conversation": "b", "time": "2026-11-23T10:00:00Z", "type": "customer.message", "abuse": "insult", "customer": "k1"}
{"conversation": "b", "time": "2026-11-23T10:00:05Z", "type": "agent.hang_up"}
{"conversation": "c", "time": "2026-11-23T10:00:06Z", "type": "agent.hang_up"}
"""


def _explain(tmp_path: Path, conversation: str) -> str:
    (tmp_path / "p.esc").write_text(POLICY, encoding="utf-8")
    (tmp_path / "e.jsonl").write_text(EVENTS, encoding="utf-8")
    args = ["explain", str(tmp_path / "p.esc"), str(tmp_path / "e.jsonl"), "--conversation", conversation, "--action", "agent.hang_up"]
    proc = subprocess.run([*escalation_command(), *args], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_values_read_across_contacts_say_they_come_from_the_customers_other_contacts(tmp_path: Path) -> None:
    out = _explain(tmp_path, "b")
    assert "arrives in conversation 'b' (bound to customer \"k1\")." in out
    note = 'across contacts: read from the history of customer "k1", events of its other contacts included'
    lets = [line for line in out.splitlines() if line.strip().startswith("warnings_this_year = ")]
    assert lets and all(f"(let warnings_this_year = count agent.warn within 365d across contacts; {note})" in line for line in lets)
    since = [line for line in out.splitlines() if line.strip().startswith("time since agent.warn across contacts = ")]
    assert since and all(line.endswith(f"({note})") for line in since)
    plain = [line for line in out.splitlines() if line.strip().startswith("seen customer.message[abuse != none] = ")]
    assert plain and all("(" not in line.split(" = ", 1)[1] for line in plain)  # the interaction's own history: no note


def test_an_unbound_conversation_reads_its_own_history(tmp_path: Path) -> None:
    out = _explain(tmp_path, "c")
    assert "arrives in conversation 'c'." in out
    assert "this conversation is bound to no customer yet, so read from its own history" in out
