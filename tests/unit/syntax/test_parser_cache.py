"""The analysed grammar is cached per user, as JSON, never in a shared folder and never as a pickle.

Before, Lark's pickle cache sat at a predictable name in the shared temporary folder and was
loaded before any check: a planted pickle ran code inside `escalation check`, and a planted
symlink made it overwrite the link's target.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import lark
import pytest

from escalation.syntax import grammar

ROOT = Path(__file__).resolve().parents[3]
POLICY = ROOT / "policies" / "three_strikes.esc"


class _Plant:
    """Unpickling this creates ``marker``: the side effect shows that a pickle was loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.mkdir, (str(self.marker),))


def _malicious_pickle(marker: Path) -> bytes:
    # Lark's cache is a first line (a hash) and then pickles; the old code unpickled before comparing the hash.
    return b"0" * 64 + b"\n" + pickle.dumps(_Plant(marker)) + pickle.dumps(_Plant(marker))


def _old_cache_name() -> str:
    """Where the engine kept Lark's pickle, in the shared temporary folder."""
    digest = hashlib.sha256(grammar.grammar_text().encode("utf-8") + lark.__version__.encode()).hexdigest()[:16]
    return f"escalation-grammar-{digest}.lark-cache"


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A run whose shared temporary folder and home are both under ``tmp_path``."""
    env = {k: v for k, v in os.environ.items() if k not in ("XDG_CACHE_HOME", "TMPDIR", "TEMP", "TMP")}
    (tmp_path / "shared").mkdir(parents=True, exist_ok=True)
    (tmp_path / "home").mkdir(parents=True, exist_ok=True)
    env.update({"TMPDIR": str(tmp_path / "shared"), "HOME": str(tmp_path / "home")})
    env.update(extra)
    return env


def _check(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "escalation", "check", str(POLICY)], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_a_planted_pickle_in_the_shared_temporary_folder_is_never_loaded(tmp_path: Path) -> None:
    env = _env(tmp_path)
    marker = tmp_path / "the-pickle-ran"
    (tmp_path / "shared" / _old_cache_name()).write_bytes(_malicious_pickle(marker))
    for _ in range(2):  # a second run too: nothing the first one wrote is read back from there
        result = _check(env)
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr
    assert not marker.exists()


def test_even_a_pickle_in_the_users_own_cache_is_not_loaded(tmp_path: Path) -> None:
    """The cache is JSON: a pickle at its name is a damaged cache, rebuilt, and runs nothing."""
    env = _env(tmp_path)
    assert _check(env).returncode == 0
    (cached,) = (tmp_path / "home" / ".cache" / "escalation").glob("parser-*.json")
    marker = tmp_path / "the-pickle-ran"
    cached.write_bytes(pickle.dumps(_Plant(marker)))
    result = _check(env)
    assert result.returncode == 0, result.stderr
    assert not marker.exists()
    assert json.loads(cached.read_bytes())["format"] == grammar.CACHE_FORMAT  # rebuilt


_AUDIT_SCRIPT = """
import json, pickle, sys
seen = []
def hook(event, args):
    if event == "open" and isinstance(args[0], str):
        seen.append(["open", args[0]])
    elif event.startswith("pickle."):
        seen.append([event, str(args)])
sys.addaudithook(hook)
from escalation.cli.app import main
sys.argv = ["escalation", "check", sys.argv[1]]
try:
    main()
except SystemExit as stop:
    code = stop.code
print(json.dumps({"code": code, "seen": seen}))
"""


def test_starting_the_parser_opens_nothing_in_the_temporary_folder_and_unpickles_nothing(tmp_path: Path) -> None:
    """Python's audit hooks see every file opened and every global a pickle would load, for a cold and a warm start."""
    env = _env(tmp_path)
    shared = str(tmp_path / "shared")
    for _ in range(2):
        result = subprocess.run([sys.executable, "-c", _AUDIT_SCRIPT, str(POLICY)], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
        report = json.loads(result.stdout.splitlines()[-1])
        assert report["code"] == 0
        assert [s for s in report["seen"] if s[0] != "open"] == []
        assert [path for _, path in report["seen"] if path.startswith(shared)] == []


def test_a_symlink_planted_in_the_shared_temporary_folder_is_not_followed(tmp_path: Path) -> None:
    env = _env(tmp_path)
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    (tmp_path / "shared" / _old_cache_name()).symlink_to(victim)
    for _ in range(2):
        result = _check(env)
        assert result.returncode == 0, result.stderr
    assert victim.read_bytes() == b"precious\n"


def test_a_symlink_at_the_users_cache_path_is_not_followed(tmp_path: Path) -> None:
    """Opened with O_NOFOLLOW, so not read; the new cache is renamed over the link, not written through it."""
    env = _env(tmp_path)
    cache = tmp_path / "home" / ".cache" / "escalation"
    cache.mkdir(parents=True, mode=0o700)
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    link = cache / grammar.cache_name(grammar.cache_key(grammar.grammar_text()))
    link.symlink_to(victim)
    for _ in range(2):
        result = _check(env)
        assert result.returncode == 0, result.stderr
    assert victim.read_bytes() == b"precious\n"
    assert not link.is_symlink() and json.loads(link.read_bytes())["format"] == grammar.CACHE_FORMAT


def test_a_cache_folder_that_is_a_symlink_is_not_used(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    (tmp_path / "xdg").mkdir()
    (tmp_path / "xdg" / "escalation").symlink_to(elsewhere, target_is_directory=True)
    result = _check(_env(tmp_path, XDG_CACHE_HOME=str(tmp_path / "xdg")))
    assert result.returncode == 0, result.stderr
    assert list(elsewhere.iterdir()) == []


def _poisoned_cache(tmp_path: Path) -> bytes:
    """A well-formed cache whose `policy` keyword is spelled `polizy`: if it were used, every policy would fail."""
    env = _env(tmp_path / "seed")
    assert _check(env).returncode == 0
    (cached,) = (tmp_path / "seed" / "home" / ".cache" / "escalation").glob("parser-*.json")
    text = cached.read_text()
    assert text.count('"value":"policy"') == 1
    return text.replace('"value":"policy"', '"value":"polizy"').encode()


def test_the_users_own_cache_is_used(tmp_path: Path) -> None:
    """The check below is not blind: a poisoned cache in a private folder does change what parses."""
    poisoned = _poisoned_cache(tmp_path)
    cache = tmp_path / "xdg" / "escalation"
    cache.mkdir(parents=True, mode=0o700)
    (cache / grammar.cache_name(grammar.cache_key(grammar.grammar_text()))).write_bytes(poisoned)
    result = _check(_env(tmp_path, XDG_CACHE_HOME=str(tmp_path / "xdg")))
    assert result.returncode == 1
    assert "E001" in result.stdout


@pytest.mark.parametrize("fault", ["world-writable", "group-writable", "another owner", "file of another owner", "file writable by others"])
def test_a_cache_folder_or_file_with_the_wrong_owner_or_permissions_is_not_used(tmp_path: Path, fault: str) -> None:
    if "owner" in fault and os.geteuid() != 0:
        pytest.skip("giving a folder to another user needs root")
    poisoned = _poisoned_cache(tmp_path)
    cache = tmp_path / "xdg" / "escalation"
    cache.mkdir(parents=True, mode=0o700)
    cached = cache / grammar.cache_name(grammar.cache_key(grammar.grammar_text()))
    cached.write_bytes(poisoned)
    cached.chmod(0o600)
    if fault == "world-writable":
        cache.chmod(0o777)
    elif fault == "group-writable":
        cache.chmod(0o770)
    elif fault == "another owner":
        os.chown(cache, 65534, 65534)
    elif fault == "file of another owner":
        os.chown(cached, 65534, 65534)
    else:
        cached.chmod(0o666)
    before = sorted(p.name for p in cache.iterdir())
    result = _check(_env(tmp_path, XDG_CACHE_HOME=str(tmp_path / "xdg")))
    assert result.returncode == 0, result.stdout + result.stderr  # built afresh, the poisoned tables ignored
    assert "Traceback" not in result.stderr
    if "file" not in fault:  # nothing is written into a folder that is not private
        assert sorted(p.name for p in cache.iterdir()) == before
        assert cached.read_bytes() == poisoned


def test_an_unusable_cache_location_only_costs_time(tmp_path: Path) -> None:
    """A cache folder that cannot be created (its parent is a file) gives a parser built afresh."""
    (tmp_path / "not-a-folder").write_text("")
    result = _check(_env(tmp_path, XDG_CACHE_HOME=str(tmp_path / "not-a-folder")))
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr


def test_a_damaged_cache_is_replaced(tmp_path: Path) -> None:
    env = _env(tmp_path)
    assert _check(env).returncode == 0
    (cached,) = (tmp_path / "home" / ".cache" / "escalation").glob("parser-*.json")
    good = json.loads(cached.read_bytes())
    for damage in (b"", b"{", b'{"format": 1}', json.dumps({**good, "tables": {"data": {}, "memo": {}}}).encode(), b"\xff" * 100):
        cached.write_bytes(damage)
        result = _check(env)
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr
        rebuilt = json.loads(cached.read_bytes())
        assert (rebuilt["format"], rebuilt["key"]) == (good["format"], good["key"])
        assert len(rebuilt["tables"]["memo"]["#int"]) == len(good["tables"]["memo"]["#int"]) > 0
    assert oct(cached.stat().st_mode & 0o777) == oct(0o600)
    assert oct(cached.parent.stat().st_mode & 0o777) == oct(0o700)


BROKEN = [
    "",
    "policy",
    'policy "x" version "1"\nrule r { while 1 permit agent.hang_up',
    'policy "x" version "1"\nlet permit = 1\n',
    'policy "x" version "1"\nlet a = count customer.message within\n',
    'policy "x" version "1"\ndefault forbid agent.hang_up severity extreme\n',
    'policy "x" version "1"\nlet a = 12abc\n',
    'policy "x" version "1"\nlet a = "open\n',
    'policy "x" version "1"\nrule r { on customer.message[abuse ==] require agent.warn }\n',
]


def test_a_parser_loaded_from_the_cache_behaves_as_one_built_afresh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    built = grammar.build_parser()  # nothing cached yet: analysed, then written
    assert list((tmp_path / "escalation").glob("parser-*.json"))
    loaded = grammar.build_parser()
    assert loaded.source_path == "<deserialized>" and built.source_path != "<deserialized>"
    texts = [p.read_text() for p in sorted((ROOT / "policies").glob("*.esc"))]
    for text in texts + BROKEN:
        start = "test_file" if text.lstrip().startswith("test") else "start"
        outcomes = []
        for p in (built, loaded):
            try:
                outcomes.append(p.parse(text, start=start))
            except lark.exceptions.UnexpectedInput as err:
                outcomes.append((type(err), getattr(err, "token", None), sorted(getattr(err, "expected", None) or []), err.line, err.column))
        assert outcomes[0] == outcomes[1]
