"""One error hierarchy: every public exception of the package is an EscalationError carrying its exit code."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import escalation
from escalation.errors import EXIT_POLICY, EXIT_REJECTED, EXIT_TAMPERED, EXIT_USAGE, EscalationError

#: Modules of optional extras are imported only when those are installed.
_OPTIONAL = {"escalation.lsp", "escalation.server"}


def _public_exceptions() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for info in pkgutil.walk_packages(escalation.__path__, "escalation."):
        if info.name.split(".")[-1].startswith("_") or info.name in _OPTIONAL:
            continue
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if inspect.isclass(obj) and issubclass(obj, BaseException) and obj.__module__ == info.name and not name.startswith("_"):
                found[f"{info.name}.{name}"] = obj
    return found


EXCEPTIONS = _public_exceptions()


def test_the_known_errors_are_found() -> None:
    names = {n.rsplit(".", 1)[1] for n in EXCEPTIONS}
    assert {"PolicyError", "InputError", "StrictStop", "SpillError", "ParallelError", "DistributedError", "FormatError", "TimeError", "SnapshotError", "OutputError"} <= names


@pytest.mark.parametrize("name", sorted(EXCEPTIONS))
def test_every_public_exception_is_an_escalation_error_with_an_exit_code(name: str) -> None:
    cls = EXCEPTIONS[name]
    if name == "escalation.cli.app.Terminated":  # SIGTERM, raised to unwind like Ctrl-C: a signal, not an error
        assert not issubclass(cls, Exception)
        return
    assert issubclass(cls, EscalationError)
    assert cls.exit_code in (1, 2, 3, 4, 5)


def test_the_exit_codes_are_those_of_the_readme() -> None:
    by_name = {n.rsplit(".", 1)[1]: c for n, c in EXCEPTIONS.items()}
    assert by_name["PolicyError"].exit_code == EXIT_POLICY
    assert by_name["StrictStop"].exit_code == EXIT_REJECTED
    assert by_name["EventError"].exit_code == EXIT_REJECTED
    assert by_name["BadLine"].exit_code == EXIT_TAMPERED
    for name in ("InputError", "SpillError", "ParallelError", "DistributedError", "OutputError", "TimeError", "SnapshotError"):
        assert by_name[name].exit_code == EXIT_USAGE, name
