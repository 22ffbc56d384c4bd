"""What the service's tests share: a real `escalation serve` process on a free local port, and the events to send it.

Traffic goes to 127.0.0.1 only; every wait is bounded.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")

ROOT = Path(__file__).resolve().parents[3]
POLICY = ROOT / "policies" / "three_strikes.esc"
SAMPLE = ROOT / "examples" / "sample.jsonl"


def escalation_command() -> list[str]:
    """The installed `escalation` beside this interpreter."""
    candidate = Path(sys.executable).with_name("escalation")
    return [str(candidate)] if candidate.exists() else [sys.executable, "-m", "escalation"]


_LISTENING = re.compile(r'"message": "listening".*?"port": ([0-9]+)')


class Served:
    """One `escalation serve` process (started again after a stop or a kill), its log, and an HTTP client."""

    def __init__(self, folder: Path, policy: Path, *args: str) -> None:
        self.folder = folder
        self.policy = policy
        self.state = folder / "state.db"
        self.audit = folder / "audit"
        self.args = args
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.starts = 0

    def command(self) -> list[str]:
        return [
            *escalation_command(), "serve", str(self.policy), "--port", "0", "--state", f"sqlite:///{self.state}", "--audit", str(self.audit), *self.args,
        ]  # fmt: skip

    def start(self, timeout: float = 60.0) -> Served:
        self.starts += 1
        log = self.folder / f"serve-{self.starts}.log"
        with open(log, "wb") as err:
            self.proc = subprocess.Popen(self.command(), stdout=subprocess.DEVNULL, stderr=err, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = _LISTENING.search(log.read_text(errors="replace"))
            if found:
                self.url = f"http://127.0.0.1:{found.group(1)}"
                self._wait_healthy(deadline)
                return self
            if self.proc.poll() is not None:
                raise AssertionError(f"escalation serve exited {self.proc.returncode}: {log.read_text(errors='replace')}")
            time.sleep(0.05)
        raise AssertionError(f"escalation serve did not listen within {timeout}s: {log.read_text(errors='replace')}")

    def _wait_healthy(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise AssertionError("the service did not answer /health in time")

    def log(self) -> str:
        return (self.folder / f"serve-{self.starts}.log").read_text(errors="replace")

    def client(self, **kwargs: Any) -> Any:
        return httpx.Client(base_url=self.url, timeout=20, **kwargs)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, and the exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.kill()


def sample_events(count: int | None = None) -> list[dict[str, Any]]:
    """The sample stream's events (each given an ``id``), in file order."""
    events = []
    for n, line in enumerate(SAMPLE.read_text().splitlines(), 1):
        if line.strip():
            event = json.loads(line)
            event["id"] = n
            events.append(event)
    return events[:count] if count is not None else events


def audit_lines(audit: Path) -> set[bytes]:
    """Every line (without LF) of every segment log in ``audit``."""
    out: set[bytes] = set()
    for path in sorted(audit.glob("segment-*.jsonl")):
        if not path.name.endswith(".input.jsonl"):
            out.update(path.read_bytes().splitlines())
    return out


def folder_bytes(audit: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(audit.iterdir())}


def verify(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*escalation_command(), "verify", *args], capture_output=True, text=True, timeout=120, env=os.environ.copy())
