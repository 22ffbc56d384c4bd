"""Helpers shared by the tests that bound work per event: compile a policy text, count the lines a call executes."""

from __future__ import annotations

import gc
import sys
from collections.abc import Callable
from typing import Any

from escalation.check import check_source
from escalation.compile import CompiledPolicy, compile_policy


def lines_executed(fn: Callable[[], Any]) -> int:
    """Python lines executed by ``fn`` (loop iterations included): a measure of work that ignores timing noise."""
    count = 0

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        nonlocal count
        if event == "line":
            count += 1
        return tracer

    # a garbage collection inside the call would count the finalisers it runs: collect first, and none during
    gc.collect()
    enabled = gc.isenabled()
    gc.disable()
    sys.settrace(tracer)
    try:
        fn()
    finally:
        sys.settrace(None)
        if enabled:
            gc.enable()
    return count


def compiled(text: str) -> CompiledPolicy:
    """The compiled policy of ``text``, which must check without errors."""
    result = check_source(text)
    assert result.checked is not None, [d.message for d in result.diagnostics]
    return compile_policy(result.checked)
