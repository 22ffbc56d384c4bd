"""The one loading pipeline: read -> parse -> check -> compile, cached by the policy's SHA-256.

Every place that loads a policy file (the CLI, the API, the test runner) goes through
:func:`load_compiled`, so a policy is read once, hashed on its bytes (the hash the audit
log records) and compiled once per process for each path and back end. ``backend``
names the back end its interactions run on (runtime/backend.py: ``generated`` or
``closures``); None leaves the choice to the environment variable ``ESCALATION_BACKEND``
(unset: ``generated``).
"""

from __future__ import annotations

import hashlib
import threading

from .check import CheckedPolicy, check_source
from .compile import CompiledPolicy, compile_policy
from .errors import PolicyError
from .syntax import read_source

__all__ = ["compile_source", "load_checked", "load_compiled"]

#: Compiled policies by (SHA-256 of the source, path, back end): the path is part of the key because diagnostics,
#: the generated code's file name and the audit header name it.
_CACHE: dict[tuple[str, str, str | None], CompiledPolicy] = {}
_CACHE_SIZE = 64
_LOCK = threading.Lock()


def load_checked(path: str) -> CheckedPolicy:
    """Read, parse and check a policy file; raises PolicyError listing every diagnostic."""
    text = read_source(path)
    result = check_source(text, path)
    if result.checked is None:
        raise PolicyError(result.diagnostics, text)
    return result.checked


def compile_source(text: str, path: str, backend: str | None = None) -> CompiledPolicy:
    """Parse, check and compile policy source named ``path`` (cached by its SHA-256); raises PolicyError."""
    source = text.encode("utf-8")
    key = (hashlib.sha256(source).hexdigest(), path, backend)
    compiled = _CACHE.get(key)
    if compiled is None:
        result = check_source(text, path)
        if result.checked is None:
            raise PolicyError(result.diagnostics, text)
        compiled = compile_policy(result.checked, source, backend)
        with _LOCK:
            if len(_CACHE) >= _CACHE_SIZE:
                _CACHE.pop(next(iter(_CACHE)))
            compiled = _CACHE.setdefault(key, compiled)
    return compiled


def load_compiled(path: str, backend: str | None = None) -> CompiledPolicy:
    """Read, check and compile a policy file (raises PolicyError); the same bytes at the same path compile once."""
    return compile_source(read_source(path), path, backend)
