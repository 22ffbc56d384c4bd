"""The policy library in policies/ and the example logs in examples/.

Every policy checks with no errors and no warnings, is formatted, passes its tests
(with full rule coverage when `escalation test --min-coverage` is available), and
names, above each rule, the seed text and step it encodes. Every example log is
what the seeded generator produces, and replays against the policies it is meant
for to the violation counts pinned below (read by hand when they were pinned).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from functools import cache
from pathlib import Path
from typing import Any

import pytest

import escalation
from conftest import ROOT, SHARED, escalation_command

POLICIES_DIR = ROOT / "policies"
EXAMPLES_DIR = ROOT / "examples"
POLICIES = sorted(p for p in POLICIES_DIR.glob("*.esc") if not p.name.endswith(".test.esc"))
#: Policies written before the seed library; they need no seed comments.
WITHOUT_SEED_COMMENTS = {"three_strikes.esc"}
#: One policy per seed text.
SEED_POLICIES = {
    "000_cccc53dfce3d9c2f.txt": "se_ten_steps.esc",
    "001_1ad9d69dd8b1452e.txt": "de_ground_rules.esc",
    "002_4110363bf251554d.txt": "lv_angry_customer.esc",
    "003_4f22e2007cc1978f.txt": "pl_assertive_service.esc",
    "004_bd3402dd45cbc526.txt": "nl_professional_handling.esc",
}
SEED_REFERENCE = re.compile(r"seeds/(\d{3}_[0-9a-f]{16}\.txt)")
#: Policies modelled on one published procedure each: the rows of ../shared/research/procedures.md they encode.
PROCEDURE_POLICIES = {
    "headway_abusive_contacts.esc": {15},
    "glasgow_restricting_contact.esc": {26, 30, 40, 61, 64, 70, 92},
    "york_customer_relations.esc": {5, 24, 25, 48, 58, 69, 94},
    "worksmart_abusive_calls.esc": {9, 84},
    "usmobile_abusive_chat.esc": {7},
    "yorlmc_patient_removal.esc": {21, 33},
}
PROCEDURES = SHARED / "research" / "procedures.md"
PROCEDURE_ROW = re.compile(r"^\| (?P<row>\d+) \|.*\| (?P<urls>[^|]*) \|$", re.M)
ROW_REFERENCE = re.compile(r"#(\d+)\b")
RULE_LINE = re.compile(r"^rule\s+([A-Za-z_][A-Za-z0-9_]*)\s*\{")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*escalation_command(), *args], capture_output=True, text=True, cwd=ROOT, check=False)


def _ids(paths: list[Path]) -> list[str]:
    return [p.name for p in paths]


def test_the_library_is_there() -> None:
    names = {p.name for p in POLICIES}
    assert set(SEED_POLICIES.values()) | {"standard.esc", "council_procedure.esc", "chat_vs_phone.esc"} <= names
    assert set(PROCEDURE_POLICIES) <= names


@pytest.mark.parametrize("policy", POLICIES, ids=_ids(POLICIES))
def test_policy_checks_without_errors_or_warnings(policy: Path) -> None:
    result = _run("check", "--format", "json", str(policy.relative_to(ROOT)))
    report = json.loads(result.stdout)
    rendered = "\n".join(f"{d.get('line')}:{d.get('column')}: {d.get('code')} {d.get('message')}" for d in report["diagnostics"])
    assert (report["errors"], report["warnings"]) == (0, 0), f"{policy.name}:\n{rendered}"
    assert result.returncode == 0


@pytest.mark.parametrize("policy", POLICIES, ids=_ids(POLICIES))
def test_policy_is_formatted(policy: Path) -> None:
    result = _run("fmt", "--check", str(policy.relative_to(ROOT)))
    assert result.returncode == 0, f"run `escalation fmt {policy.relative_to(ROOT)}`:\n{result.stdout}{result.stderr}"


@pytest.mark.parametrize("policy", POLICIES, ids=_ids(POLICIES))
def test_policy_tests_pass(policy: Path) -> None:
    result = _run("test", str(policy.relative_to(ROOT)))
    last = result.stdout.rstrip().splitlines()[-1]
    assert result.returncode == 0, f"{policy.name}:\n{result.stdout}{result.stderr}"
    match = re.fullmatch(r"(\d+) passed, 0 failed", last)
    assert match and int(match.group(1)) >= 1, f"{policy.name} has no passing tests: {last}"


@cache
def _coverage_available() -> bool:
    return "--min-coverage" in _run("test", "--help").stdout


@pytest.mark.parametrize("policy", POLICIES, ids=_ids(POLICIES))
def test_policy_tests_cover_every_rule(policy: Path) -> None:
    if not _coverage_available():
        pytest.skip("`escalation test --min-coverage` is not available in this version")
    result = _run("test", "--min-coverage", "100", str(policy.relative_to(ROOT)))
    assert result.returncode == 0, f"{policy.name} is not fully covered by its tests:\n{result.stdout}{result.stderr}"


def _rules_and_their_comments(path: Path) -> list[tuple[str, int, str]]:
    """(rule name, line, the comment block directly above it) for every rule of a policy."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found = []
    for number, line in enumerate(lines):
        match = RULE_LINE.match(line)
        if not match:
            continue
        block = []
        above = number - 1
        while above >= 0 and lines[above].lstrip().startswith("#"):
            block.append(lines[above])
            above -= 1
        found.append((match.group(1), number + 1, "\n".join(reversed(block))))
    return found


SEED_COMMENTED = [p for p in POLICIES if p.name not in WITHOUT_SEED_COMMENTS | set(PROCEDURE_POLICIES)]


@pytest.mark.parametrize("policy", SEED_COMMENTED, ids=_ids(SEED_COMMENTED))
def test_every_rule_names_its_seed(policy: Path) -> None:
    rules = _rules_and_their_comments(policy)
    assert rules, f"{policy.name} has no rules"
    loaded = escalation.load(str(policy))
    assert {name for name, _, _ in rules} == {r.name.text for r in loaded.compiled.checked.policy.rules}, (
        "a rule was not found by the scan"
    )
    missing = [f"{name} (line {line})" for name, line, comment in rules if not SEED_REFERENCE.search(comment)]
    assert not missing, f"{policy.name}: rules without a `# seeds/NNN_....txt, step ...` comment above them: {missing}"
    if (SHARED / "seeds").is_dir():
        cited = set(SEED_REFERENCE.findall(policy.read_text(encoding="utf-8")))
        unknown = sorted(c for c in cited if not (SHARED / "seeds" / c).is_file())
        assert not unknown, f"{policy.name} cites seed files that do not exist: {unknown}"


@pytest.mark.parametrize(("seed", "policy"), sorted(SEED_POLICIES.items()))
def test_each_seed_has_its_policy_which_says_what_it_could_not_express(seed: str, policy: str) -> None:
    text = (POLICIES_DIR / policy).read_text(encoding="utf-8")
    cited = set(SEED_REFERENCE.findall(text))
    assert cited == {seed}, f"{policy} should encode {seed} only, and cites {sorted(cited)}"
    assert "cannot be expressed" in text, f"{policy} should list the steps it cannot express, and why"


def _procedure_urls() -> dict[int, list[str]]:
    """Row number -> the URLs that row of procedures.md gives for its source ("(as #21)" rows give none)."""
    rows = {}
    for m in PROCEDURE_ROW.finditer(PROCEDURES.read_text(encoding="utf-8")):
        rows[int(m["row"])] = re.findall(r"https?://\S+", m["urls"])
    return rows


PROCEDURE_COMMENTED = [POLICIES_DIR / name for name in sorted(PROCEDURE_POLICIES)]


@pytest.mark.parametrize("policy", PROCEDURE_COMMENTED, ids=_ids(PROCEDURE_COMMENTED))
def test_every_rule_names_its_procedure_row(policy: Path) -> None:
    """A procedure policy cites its source (title and URL) in its header, and the row of procedures.md above each rule."""
    text = policy.read_text(encoding="utf-8")
    rows = PROCEDURE_POLICIES[policy.name]
    header = text.split("\ncalendar", 1)[0].split("\nevent ", 1)[0].split("\naction ", 1)[0]
    assert "procedures.md" in header and all(f"#{row}" in header for row in rows), f"{policy.name}: the header should name its rows of procedures.md"
    assert "cannot express" in header and "docs/gaps.md" in header, f"{policy.name}: the header should list what the language cannot express"
    if PROCEDURES.is_file():
        urls = _procedure_urls()
        for row in rows:
            assert any(url in header for url in urls[row]) or not urls[row], f"{policy.name}: the header should give the URL of row #{row}"
    rules = _rules_and_their_comments(policy)
    assert rules, f"{policy.name} has no rules"
    uncited = [f"{name} (line {line})" for name, line, comment in rules if not {int(n) for n in ROW_REFERENCE.findall(comment)} & rows]
    assert not uncited, f"{policy.name}: rules without a `# Procedure (#N, ...)` comment naming one of its rows: {uncited}"
    assert not SEED_REFERENCE.search(text), f"{policy.name} is modelled on a procedure, not on a seed text"


def test_the_standard_policy_draws_on_every_seed() -> None:
    cited = set(SEED_REFERENCE.findall((POLICIES_DIR / "standard.esc").read_text(encoding="utf-8")))
    assert cited == set(SEED_POLICIES)


# --- the example logs --------------------------------------------------------------------------

#: How each committed log was generated (examples/README.md gives the same commands).
GENERATED = {
    "sample.jsonl": ["--conversations", "30", "--seed", "7"],
    "se_ten_steps.jsonl": ["--profile", "se_ten_steps", "--conversations", "30", "--seed", "1", "--bad", "5"],
    "de_ground_rules.jsonl": ["--profile", "de_ground_rules", "--conversations", "30", "--seed", "1", "--bad", "5"],
    "lv_angry_customer.jsonl": ["--profile", "lv_angry_customer", "--conversations", "30", "--seed", "1", "--bad", "5"],
    "pl_assertive_service.jsonl": ["--profile", "pl_assertive_service", "--conversations", "30", "--seed", "1", "--bad", "5"],
    "nl_professional_handling.jsonl": [
        "--profile",
        "nl_professional_handling",
        "--conversations",
        "30",
        "--seed",
        "1",
        "--bad",
        "5",
    ],
    "standard.jsonl": ["--profile", "standard", "--conversations", "30", "--seed", "1", "--bad", "5"],
    "council_procedure.jsonl": ["--profile", "council_procedure", "--conversations", "30", "--seed", "1", "--bad", "5"],
    "chat_vs_phone.jsonl": ["--profile", "chat_vs_phone", "--conversations", "40", "--seed", "1", "--bad", "5"],
    **{f"{name.removesuffix('.esc')}.jsonl": ["--profile", name.removesuffix(".esc"), "--customers", "40", "--seed", "1", "--bad", "5"] for name in PROCEDURE_POLICIES},
}


@pytest.mark.parametrize(("log", "args"), sorted(GENERATED.items()), ids=sorted(GENERATED))
def test_example_log_is_what_the_generator_gives(log: str, args: list[str]) -> None:
    result = subprocess.run([sys.executable, str(EXAMPLES_DIR / "generate.py"), *args], capture_output=True, cwd=ROOT, check=True)
    assert result.stdout == (EXAMPLES_DIR / log).read_bytes(), f"examples/{log} is not what `generate.py {' '.join(args)}` gives"


#: (log, policy) -> (forbidden_action, missed_deadline, unfulfilled, rejected records), as replayed today.
PINNED = {
    ("sample.jsonl", "three_strikes.esc"): (9, 39, 4, 0),
    ("with_rejects.jsonl", "three_strikes.esc"): (13, 48, 0, 6),
    ("se_ten_steps.jsonl", "se_ten_steps.esc"): (6, 22, 32, 5),
    ("de_ground_rules.jsonl", "de_ground_rules.esc"): (10, 13, 13, 5),
    ("lv_angry_customer.jsonl", "lv_angry_customer.esc"): (9, 33, 3, 5),
    ("pl_assertive_service.jsonl", "pl_assertive_service.esc"): (5, 10, 12, 5),
    ("nl_professional_handling.jsonl", "nl_professional_handling.esc"): (9, 11, 4, 5),
    ("standard.jsonl", "standard.esc"): (9, 29, 5, 5),
    ("council_procedure.jsonl", "council_procedure.esc"): (4, 13, 4, 5),
    ("chat_vs_phone.jsonl", "chat_vs_phone.esc"): (4, 5, 3, 5),
    ("headway_abusive_contacts.jsonl", "headway_abusive_contacts.esc"): (5, 10, 0, 5),
    ("glasgow_restricting_contact.jsonl", "glasgow_restricting_contact.esc"): (4, 11, 0, 5),
    ("york_customer_relations.jsonl", "york_customer_relations.esc"): (9, 23, 0, 5),
    ("worksmart_abusive_calls.jsonl", "worksmart_abusive_calls.esc"): (12, 16, 0, 5),
    ("usmobile_abusive_chat.jsonl", "usmobile_abusive_chat.esc"): (2, 13, 2, 5),
    ("yorlmc_patient_removal.jsonl", "yorlmc_patient_removal.esc"): (2, 3, 0, 5),
}


@cache
def _replay(log: str, policy: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    records = list(escalation.replay(escalation.load(str(POLICIES_DIR / policy)), [str(EXAMPLES_DIR / log)]))
    return records[-1], records


@pytest.mark.parametrize(("log", "policy"), sorted(PINNED), ids=[f"{log}-{policy}" for log, policy in sorted(PINNED)])
def test_example_log_replays_to_the_pinned_counts(log: str, policy: str) -> None:
    summary, records = _replay(log, policy)
    by_kind = summary["by_kind"]
    found = (by_kind["forbidden_action"], by_kind["missed_deadline"], by_kind["unfulfilled"], summary["rejected"])
    assert found == PINNED[(log, policy)], (
        f"{log} against {policy}: (forbidden_action, missed_deadline, unfulfilled, rejected) = {found}"
    )
    counted = Counter(v["kind"] for r in records if r["kind"] in ("decision", "close") for v in r["violations"])
    assert (counted["forbidden_action"], counted["missed_deadline"], counted["unfulfilled"]) == found[:3]


PROFILE_LOGS = [(log, policy) for log, policy in sorted(PINNED) if log.removesuffix(".jsonl") == policy.removesuffix(".esc")]


def _has_before_deadline(policy: str) -> bool:
    """Whether some `require` of the policy can be `unfulfilled` (it has a `before E` deadline)."""
    return re.search(r"^\s*require .* before [a-z_]+\.[a-z_.]+\s*$", (POLICIES_DIR / policy).read_text(encoding="utf-8"), re.M) is not None


@pytest.mark.parametrize(("log", "policy"), PROFILE_LOGS, ids=[log for log, _ in PROFILE_LOGS])
def test_profile_logs_show_every_kind_of_violation_and_bad_records(log: str, policy: str) -> None:
    summary, _ = _replay(log, policy)
    forbidden, missed, unfulfilled, rejected = PINNED[(log, policy)]
    assert forbidden > 0 and missed > 0 and rejected > 0, f"{log} should show violations of each kind and some rejected records"
    assert (unfulfilled > 0) == _has_before_deadline(policy), f"{log}: `unfulfilled` violations come exactly from `before` deadlines"
    assert summary["conversations"] >= 20
    assert summary["events"] >= 250


CUSTOMER_LOGS = [(f"{name.removesuffix('.esc')}.jsonl", name) for name in sorted(PROCEDURE_POLICIES)]


@pytest.mark.parametrize(("log", "policy"), CUSTOMER_LOGS, ids=[log for log, _ in CUSTOMER_LOGS])
def test_customer_logs_hold_customers_over_months(log: str, policy: str) -> None:
    """Several contacts per customer over months, across the new year; some anonymous, some binding late."""
    summary, _ = _replay(log, policy)
    records = [json.loads(line) for line in (EXAMPLES_DIR / log).read_text(encoding="utf-8").splitlines() if line.startswith("{")]
    conversations: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        if isinstance(record.get("conversation"), str) and isinstance(record.get("time"), str):
            conversations.setdefault(record["conversation"], []).append(record)
    customers = Counter(next(r["customer"] for r in rs if r.get("customer")) for rs in conversations.values() if any(r.get("customer") for r in rs))
    anonymous = [c for c, rs in conversations.items() if not any(r.get("customer") for r in rs)]
    late = [c for c, rs in conversations.items() if not rs[0].get("customer") and any(r.get("customer") for r in rs)]
    assert summary["customers"] == len(customers) >= 20
    assert sum(1 for n in customers.values() if n >= 3) >= 10, "most customers should have several contacts"
    assert anonymous and late, f"{log} should hold anonymous contacts and contacts that bind late"
    years = {r["time"][:4] for r in records if isinstance(r.get("time"), str)}
    assert {"2026", "2027"} <= years, f"{log} should cross the new year"


def test_every_example_log_is_replayed_against_a_policy() -> None:
    logs = {p.name for p in EXAMPLES_DIR.glob("*.jsonl")}
    assert logs == {log for log, _ in PINNED}, "a log in examples/ has no pinned replay (or a pinned log is missing)"
