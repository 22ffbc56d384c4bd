"""Record the SHA-256 of the audit logs the current code writes, for the byte-identity test.

    .venv/bin/python tests/properties/golden/record.py            # rewrites the file of the engine's format
    .venv/bin/python tests/properties/golden/record.py --format 2 # the same, refused unless the engine writes /2

The engine's audit format (``escalation.audit.FORMAT``, switched in one place) picks the
file: ``audits.json`` holds the ``escalation-audit/1`` logs (the cases of language 1),
``audits-2.json`` the ``escalation-audit/2`` ones (every replay case, language 2 included),
recorded once the lead has flipped the format.

Run it only before a change that may alter audit bytes on purpose (and say why in the
commit); `tests/properties/test_golden_audits.py` replays every entry and compares. An entry is a
replay: where it runs (``cwd``), its arguments after ``escalation`` (paths relative to
``cwd``, so the header, which names the inputs as given, is the same wherever the
repository is checked out), the exit code and the SHA-256 of the audit log. ``cwd`` is
``repo`` (the repository root), ``case:NAME`` (a conformance case folder in
``../shared/conformance/cases``, run as its runner does) or ``bench`` (a scratch folder
holding a copy of ``benchmarks/three_strikes.esc`` and ``events.jsonl`` made by
``benchmarks/gen_events.py`` with ``bench_generator`` as its arguments).
The audit log is written to ``-o`` in a scratch folder, appended by :func:`run_entry`.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]
HERE = ROOT / "tests" / "properties" / "golden"
AUDITS = HERE / "audits.json"
#: The recorded logs of each audit format (1: ``escalation-audit/1``, 2: ``escalation-audit/2``).
GOLDEN = {1: AUDITS, 2: HERE / "audits-2.json"}
CASES = ROOT.parent / "shared" / "conformance" / "cases"
BENCH_GENERATOR = ["--events", "20000", "--conversations", "500", "--seed", "2026"]


def escalation_command() -> list[str]:
    """The installed `escalation` beside this interpreter, else `python -m escalation`."""
    candidate = Path(sys.executable).with_name("escalation")
    if candidate.exists():
        return [str(candidate)]
    found = shutil.which("escalation")
    return [found] if found else [sys.executable, "-m", "escalation"]


def example_entries() -> list[dict[str, Any]]:
    """Every log in examples/ against the policy examples/README.md names for it (its table)."""
    entries = []
    table = re.compile(r"^\| `(?P<log>[a-z_]+\.jsonl)` \| `(?P<policy>[a-z_]+\.esc)` \|", re.M)
    for m in table.finditer((ROOT / "examples" / "README.md").read_text(encoding="utf-8")):
        log, policy = m["log"], m["policy"]
        entries.append({"name": f"examples/{log}", "cwd": "repo",
                        "args": ["replay", f"policies/{policy}", f"examples/{log}"]})
    return entries


def engine_format() -> int:
    """The audit format the installed engine writes: 1 or 2 (``escalation.audit.FORMAT``)."""
    from escalation.audit import FORMAT  # the package under test, imported when asked (this file also runs as a script)

    return int(FORMAT.rsplit("/", 1)[1])


def golden_file(fmt: int | None = None) -> Path:
    """The file of recorded logs for format ``fmt`` (the engine's by default)."""
    return GOLDEN[engine_format() if fmt is None else fmt]


def case_entries(language: int = 1) -> list[dict[str, Any]]:
    """The conformance replay cases of ``language`` or earlier that write a log, run as the runner runs them."""
    entries = []
    for case_json in sorted(CASES.glob("*/case.json")):
        spec = json.loads(case_json.read_text(encoding="utf-8"))
        if spec.get("kind") != "replay" or spec.get("language", 1) > language or spec.get("no_output"):
            continue
        if "stdin" in spec:  # none so far; the test would have to feed it
            raise SystemExit(f"{case_json}: a case that reads stdin is not supported here")
        name = case_json.parent.name
        entries.append({"name": f"case:{name}", "cwd": f"case:{name}",
                        "args": ["replay", spec["policy"], *spec["events"], *spec.get("args", [])]})
    return entries


def bench_entries() -> list[dict[str, Any]]:
    """A generated benchmark log, serial and with --jobs 2 (the same bytes), and one example with --jobs 2."""
    replay = ["replay", "three_strikes.esc", "events.jsonl"]
    return [
        {"name": "bench", "cwd": "bench", "args": replay},
        {"name": "bench --jobs 2", "cwd": "bench", "args": [*replay, "--jobs", "2"]},
        {"name": "examples/sample.jsonl --jobs 2", "cwd": "repo",
         "args": ["replay", "policies/three_strikes.esc", "examples/sample.jsonl", "--jobs", "2"]},
    ]


def prepare_bench(folder: Path) -> None:
    """The scratch folder of the ``bench`` entries: the benchmark policy and its generated events."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ROOT / "benchmarks" / "three_strikes.esc", folder / "three_strikes.esc")
    with open(folder / "events.jsonl", "wb") as out:
        subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gen_events.py"), *BENCH_GENERATOR],
                       stdout=out, check=True)


def where(entry: dict[str, Any], bench: Path) -> Path:
    cwd = entry["cwd"]
    if cwd == "repo":
        return ROOT
    if cwd == "bench":
        return bench
    if cwd.startswith("case:"):
        return CASES / cwd.removeprefix("case:")
    raise ValueError(f"unknown cwd {cwd!r}")


def run_entry(entry: dict[str, Any], bench: Path, out: Path) -> tuple[int, str, bytes]:
    """Replay one entry into ``out``: its exit code, the SHA-256 of the log, and stderr."""
    args = list(entry["args"])
    proc = subprocess.run([*escalation_command(), *args, "-o", str(out)], cwd=where(entry, bench),
                          capture_output=True, timeout=600)
    digest = hashlib.sha256(out.read_bytes()).hexdigest() if out.exists() else ""
    return proc.returncode, digest, proc.stderr


def main(argv: list[str]) -> None:
    fmt = engine_format()
    if argv[:1] == ["--format"] and len(argv) == 2:
        if int(argv[1]) != fmt:
            raise SystemExit(f"the engine writes escalation-audit/{fmt}, not /{argv[1]}: switch FORMAT in audit/records.py first")
    elif argv:
        raise SystemExit("usage: record.py [--format 1|2]")
    target = GOLDEN[fmt]
    entries = [*case_entries(language=fmt), *example_entries(), *bench_entries()]
    with tempfile.TemporaryDirectory() as tmp:
        bench = Path(tmp) / "bench"
        prepare_bench(bench)
        for n, entry in enumerate(entries):
            out = Path(tmp) / f"audit{n}.jsonl"
            code, digest, stderr = run_entry(entry, bench, out)
            if not digest:
                raise SystemExit(f"{entry['name']}: no audit log (exit {code}): {stderr.decode(errors='replace')}")
            entry["exit"], entry["sha256"] = code, digest
    document = {"bench_generator": BENCH_GENERATOR, "entries": entries}
    target.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    print(f"{len(entries)} audit logs of escalation-audit/{fmt} recorded in {target.relative_to(ROOT)}")


if __name__ == "__main__":
    main(sys.argv[1:])
