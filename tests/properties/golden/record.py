"""Record the SHA-256 of the audit logs the current code writes, for the byte-identity test.

    .venv/bin/python tests/properties/golden/record.py            # rewrites tests/properties/golden/audits.json

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


def case_entries() -> list[dict[str, Any]]:
    """The conformance replay cases of language 1 that write a log, run as the runner runs them."""
    entries = []
    for case_json in sorted(CASES.glob("*/case.json")):
        spec = json.loads(case_json.read_text(encoding="utf-8"))
        if spec.get("kind") != "replay" or spec.get("language", 1) != 1 or spec.get("no_output"):
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


def main() -> None:
    entries = [*case_entries(), *example_entries(), *bench_entries()]
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
    AUDITS.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    print(f"{len(entries)} audit logs recorded in {AUDITS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
